// Python bindings of the word2vec corpus engine (fastpretrain._C). Arrays cross
// the boundary without copies: results are numpy arrays that own C++ buffers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "producer.h"
#include "sampling.h"
#include "text_encoder.h"
#include "trainer.h"

namespace py = pybind11;
using namespace fp;

namespace {

template <class T>
py::array_t<T> to_numpy(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
  auto* owned = new std::vector<T>(std::move(v));
  py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, owned->data(), owner);
}

template <class T>
py::array_t<T> to_numpy(std::vector<T>&& v) {
  const auto n = static_cast<py::ssize_t>(v.size());
  return to_numpy(std::move(v), {n});
}

std::vector<int64_t> counts_vector(const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& counts) {
  if (counts.ndim() != 1) throw py::value_error("counts must be a 1-D array");
  for (py::ssize_t i = 0; i < counts.size(); ++i) {
    if (counts.data()[i] < 0) throw py::value_error("counts must be >= 0");
  }
  return std::vector<int64_t>(counts.data(), counts.data() + counts.size());
}

py::array_t<int32_t> feed(TextEncoder& enc, const py::bytes& data) {
  char* ptr;
  py::ssize_t n;
  PYBIND11_BYTES_AS_STRING_AND_SIZE(data.ptr(), &ptr, &n);
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(n) / 4);
  {
    py::gil_scoped_release release;
    enc.feed(ptr, static_cast<size_t>(n), out);
  }
  return to_numpy(std::move(out));
}

py::array_t<int32_t> feed_sentences(TextEncoder& enc, const py::iterable& sentences) {
  std::vector<int32_t> out;
  for (py::handle sentence : sentences) {
    if (py::isinstance<py::str>(sentence) || py::isinstance<py::bytes>(sentence)) {
      throw py::type_error("sentences: expected an iterable of token lists, found a string; split it into tokens");
    }
    if (!py::isinstance<py::iterable>(sentence)) {
      throw py::type_error("sentences: expected an iterable of token lists, found " +
                           std::string(py::str(py::type::handle_of(sentence).attr("__name__"))));
    }
    for (py::handle token : sentence) {
      if (!PyUnicode_Check(token.ptr())) {
        throw py::type_error("sentences: tokens must be str, found " +
                             std::string(py::str(py::type::handle_of(token).attr("__name__"))));
      }
      Py_ssize_t len;
      const char* utf8 = PyUnicode_AsUTF8AndSize(token.ptr(), &len);
      if (utf8 == nullptr) {
        PyErr_Clear();
        throw py::value_error("sentences: token " + std::string(py::repr(token)) +
                              " cannot be encoded as UTF-8 (it holds a lone surrogate)");
      }
      try {
        enc.add_word(std::string_view(utf8, static_cast<size_t>(len)), out);
      } catch (const std::invalid_argument& e) {
        throw py::value_error(std::string("sentences: ") + e.what());
      }
    }
    enc.end_sentence(out);
  }
  return to_numpy(std::move(out));
}

py::list words(const TextEncoder& enc) {
  const WordTable& t = enc.table();
  py::list out(t.size());
  for (int32_t i = 0; i < t.size(); ++i) {
    const std::string_view w = t.word(i);
    out[i] = py::reinterpret_steal<py::object>(PyUnicode_DecodeUTF8(w.data(), static_cast<Py_ssize_t>(w.size()), "strict"));
  }
  return out;
}

int64_t remap(py::array_t<int32_t, py::array::c_style> ids, const py::array_t<int32_t, py::array::c_style>& mapping) {
  if (!ids.writeable()) throw py::value_error("ids must be writable");
  int32_t* data = ids.mutable_data();
  const int64_t n = ids.size();
  py::gil_scoped_release release;
  return remap_ids(data, n, mapping.data(), mapping.size());
}

py::tuple alias_table(const py::array_t<double, py::array::c_style | py::array::forcecast>& weights) {
  AliasTable table(std::vector<double>(weights.data(), weights.data() + weights.size()));
  return py::make_tuple(to_numpy(std::vector<uint64_t>(table.thresholds())),
                        to_numpy(std::vector<int32_t>(table.aliases())));
}

py::tuple huffman(const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& counts) {
  HuffmanCodes h = build_huffman(counts_vector(counts));
  const auto v = static_cast<py::ssize_t>(h.lengths.size());
  return py::make_tuple(to_numpy(std::move(h.codes), {v, h.max_length}),
                        to_numpy(std::move(h.points), {v, h.max_length}),
                        to_numpy(std::move(h.lengths)));
}

// Keeps the id array alive for as long as the worker threads read it.
struct PyProducer {
  py::array_t<int32_t, py::array::c_style> ids;
  ProducerOptions options;
  std::unique_ptr<Producer> producer;
};

py::object next_batch(PyProducer& self) {
  std::unique_ptr<Batch> b;
  for (;;) {
    bool timed_out;
    {
      py::gil_scoped_release release;
      b = self.producer->next(100, &timed_out);
    }
    if (b || !timed_out) break;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();  // Ctrl-C while waiting
  }
  if (!b) return py::none();
  const StreamOptions& o = self.options.stream;
  const auto n = static_cast<py::ssize_t>(b->size);
  py::dict out;
  out["centers"] = to_numpy(std::move(b->centers));
  if (o.skipgram) {
    out["contexts"] = to_numpy(std::move(b->contexts));
    out["lengths"] = py::none();
  } else {
    out["contexts"] = to_numpy(std::move(b->contexts), {n, 2 * static_cast<py::ssize_t>(o.window)});
    out["lengths"] = to_numpy(std::move(b->lengths));
  }
  out["negatives"] = o.negative > 0 ? py::object(to_numpy(std::move(b->negatives), {n, o.negative})) : py::none();
  out["epoch"] = b->epoch;
  out["worker"] = b->worker;
  out["progress"] = self.producer->progress();
  return out;
}

using FloatTable = py::array_t<float, py::array::c_style>;
using IntArray = py::array_t<int32_t, py::array::c_style>;

// Keeps the ids, the weight tables (numpy views of the model's torch tensors) and the Huffman
// tables alive for as long as the threads use them.
struct PyTrainer {
  IntArray ids;
  std::vector<py::object> keep_alive;
  std::unique_ptr<Trainer> trainer;
};

// The float32 [rows, dim] table `name`, in place: a view, never a copy.
float* table(const char* name, const py::object& t, int64_t rows, int64_t dim, std::vector<py::object>& keep) {
  if (t.is_none()) return nullptr;
  auto a = py::cast<py::array>(t);
  if (!py::isinstance<FloatTable>(a) || !(a.flags() & py::array::c_style) || !a.writeable() || a.ndim() != 2 ||
      a.shape(0) != rows || a.shape(1) != dim) {
    throw py::value_error(std::string(name) + ": expected a writable C-contiguous float32 array of shape (" +
                          std::to_string(rows) + ", " + std::to_string(dim) + "), updated in place");
  }
  keep.push_back(a);
  return static_cast<float*>(a.mutable_data());
}

std::unique_ptr<PyTrainer> make_trainer(IntArray ids, const py::array_t<double, py::array::c_style | py::array::forcecast>& keep,
                                        const py::array_t<double, py::array::c_style | py::array::forcecast>& noise,
                                        const py::object& syn0, const py::object& syn1neg, const py::object& syn1,
                                        const py::object& codes, const py::object& points, const py::object& code_lengths,
                                        bool skipgram, bool cbow_mean, int32_t window, int32_t negative, int32_t epochs,
                                        int32_t workers, uint64_t seed, double alpha, double min_alpha,
                                        int32_t max_sentence_length, bool shrink_windows, int32_t loss_every,
                                        const std::string& isa) {
  auto self = std::make_unique<PyTrainer>();
  self->ids = std::move(ids);
  const auto vocab = static_cast<int64_t>(keep.size());
  const int64_t dim = py::cast<py::array>(syn0).ndim() == 2 ? py::cast<py::array>(syn0).shape(1) : -1;
  SgdModel m;
  m.dim = static_cast<int32_t>(dim);
  m.syn0 = table("syn0", syn0, vocab, dim, self->keep_alive);
  if (negative > 0) m.syn1neg = table("syn1neg", syn1neg, vocab, dim, self->keep_alive);
  m.hs = !syn1.is_none();
  if (m.hs) {
    m.syn1 = table("syn1", syn1, std::max<int64_t>(vocab - 1, 1), dim, self->keep_alive);
    auto c = py::cast<py::array_t<int8_t, py::array::c_style>>(codes);
    auto p = py::cast<IntArray>(points);
    auto n = py::cast<IntArray>(code_lengths);
    if (c.ndim() != 2 || c.shape(0) != vocab || p.ndim() != 2 || p.shape(0) != vocab || p.shape(1) != c.shape(1) ||
        n.ndim() != 1 || n.shape(0) != vocab) {
      throw py::value_error("codes, points, code_lengths: expected Vocab.huffman()'s [V, L], [V, L] and [V] arrays");
    }
    for (py::ssize_t w = 0; w < vocab; ++w) {
      if (n.data()[w] < 0 || n.data()[w] > c.shape(1)) throw py::value_error("code_lengths: out of [0, L]");
      for (int32_t k = 0; k < n.data()[w]; ++k) {
        const int32_t node = p.data()[w * p.shape(1) + k];
        if (node < 0 || node >= std::max<int64_t>(vocab - 1, 1)) throw py::value_error("points: a node outside syn1");
      }
    }
    m.codes = c.data();
    m.points = p.data();
    m.code_lengths = n.data();
    m.max_code_length = static_cast<int32_t>(c.shape(1));
    self->keep_alive.insert(self->keep_alive.end(), {c, p, n});
  }
  m.negative = negative;
  m.skipgram = skipgram;
  m.cbow_mean = cbow_mean;
  AliasTable table_;
  if (negative > 0) table_ = AliasTable(std::vector<double>(noise.data(), noise.data() + noise.size()));
  TrainerOptions o{StreamOptions{skipgram, shrink_windows, window, negative, max_sentence_length}, epochs, workers,
                   seed, alpha, min_alpha, loss_every};
  self->trainer = std::make_unique<Trainer>(self->ids.data(), self->ids.size(),
                                            std::vector<double>(keep.data(), keep.data() + keep.size()),
                                            std::move(table_), m, select_update(isa), o);
  return self;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastpretrain's C++ word2vec corpus engine";

  py::class_<TextEncoder>(m, "TextEncoder", "Streaming tokenizer and word counter (one pass).")
      .def(py::init<int64_t>(), py::arg("max_vocab_size") = 0, "max_vocab_size > 0: gensim's scan-time pruning.")
      .def("feed", &feed, py::arg("data"),
           "Tokenize a chunk of UTF-8 bytes; returns provisional ids, -1 at line ends.")
      .def("end_source", [](TextEncoder& e) {
             std::vector<int32_t> out;
             e.end_source(out);
             return to_numpy(std::move(out));
           }, "Flush the last word of a source and close its line.")
      .def("feed_sentences", &feed_sentences, py::arg("sentences"),
           "Add an iterable of token lists; each list ends a line.")
      .def("__len__", [](const TextEncoder& e) { return e.table().size(); })
      .def("words", &words, "Distinct words in order of first appearance.")
      .def("counts", [](const TextEncoder& e) { return to_numpy(std::vector<int64_t>(e.table().counts())); })
      .def("final_order", [](const TextEncoder& e, int64_t min_count, int64_t max_final_vocab, bool sorted) {
             return to_numpy(e.final_order(min_count, max_final_vocab, sorted));
           }, py::arg("min_count"), py::arg("max_final_vocab"), py::arg("sorted"),
           "Provisional ids of the final vocabulary by gensim's rules (max_final_vocab < 0: no limit).")
      .def_property_readonly("bytes_seen", &TextEncoder::bytes_seen);

  m.def("remap_ids", &remap, py::arg("ids"), py::arg("mapping"),
        "Map ids through `mapping` in place (negative = drop), collapse empty lines; returns the new length.");
  m.def("keep_probabilities", [](const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& counts,
                                 double sample) {
          if (!(sample >= 0)) throw py::value_error("sample: expected a threshold >= 0, got " + std::to_string(sample));
          return to_numpy(keep_probabilities(counts_vector(counts), sample));
        },
        py::arg("counts"), py::arg("sample"));
  m.def("alias_table", &alias_table, py::arg("weights"), "Vose alias table: (thresholds in units of 2^-32, aliases).");
  m.def("huffman", &huffman, py::arg("counts"), "Huffman (codes, points, lengths) in word2vec.c's layout.");

  py::class_<PyProducer>(m, "Producer", "Multi-threaded word2vec batch producer.")
      .def(py::init([](py::array_t<int32_t, py::array::c_style> ids,
                       const py::array_t<double, py::array::c_style | py::array::forcecast>& keep,
                       const py::array_t<double, py::array::c_style | py::array::forcecast>& noise, bool skipgram,
                       int32_t window, int32_t negative, int64_t batch_size, int32_t epochs, int32_t workers,
                       uint64_t seed, int32_t max_sentence_length, int32_t queue_depth, bool shrink_windows) {
             auto self = std::make_unique<PyProducer>();
             self->ids = std::move(ids);
             self->options = ProducerOptions{
                 StreamOptions{skipgram, shrink_windows, window, negative, max_sentence_length}, batch_size, epochs,
                 workers, seed, queue_depth};
             AliasTable table;
             if (negative > 0) table = AliasTable(std::vector<double>(noise.data(), noise.data() + noise.size()));
             self->producer = std::make_unique<Producer>(
                 self->ids.data(), self->ids.size(), std::vector<double>(keep.data(), keep.data() + keep.size()),
                 std::move(table), self->options);
             return self;
           }),
           py::arg("ids"), py::arg("keep"), py::arg("noise"), py::arg("skipgram"), py::arg("window"),
           py::arg("negative"), py::arg("batch_size"), py::arg("epochs"), py::arg("workers"), py::arg("seed"),
           py::arg("max_sentence_length"), py::arg("queue_depth"), py::arg("shrink_windows") = true)
      .def("next", &next_batch, "Next batch as a dict of numpy arrays, or None when done.")
      .def_property_readonly("words_per_epoch", [](const PyProducer& p) { return p.producer->words_per_epoch(); })
      .def_property_readonly("progress", [](const PyProducer& p) { return p.producer->progress(); });

  m.def("sgd_isas", &supported_isas, "Instruction sets of the SGD step this CPU runs, best last.");
  py::class_<PyTrainer>(m, "Trainer", "word2vec.c's Hogwild training loop on the model's CPU tables.")
      .def(py::init(&make_trainer), py::arg("ids"), py::arg("keep"), py::arg("noise"), py::arg("syn0"),
           py::arg("syn1neg"), py::arg("syn1"), py::arg("codes"), py::arg("points"), py::arg("code_lengths"),
           py::arg("skipgram"), py::arg("cbow_mean"), py::arg("window"), py::arg("negative"), py::arg("epochs"),
           py::arg("workers"), py::arg("seed"), py::arg("alpha"), py::arg("min_alpha"),
           py::arg("max_sentence_length"), py::arg("shrink_windows"), py::arg("loss_every"), py::arg("isa"))
      .def("start", [](PyTrainer& t) { t.trainer->start(); }, "Start the threads.")
      .def("wait", [](PyTrainer& t, int timeout_ms) {
             py::gil_scoped_release release;
             return t.trainer->wait(timeout_ms);
           }, py::arg("timeout_ms"), "Wait up to timeout_ms; True once every thread has finished.")
      .def("stop", [](PyTrainer& t) {
             py::gil_scoped_release release;
             t.trainer->stop();
           }, "Stop the threads at their next sentence and join them.")
      .def_property_readonly("words_per_epoch", [](const PyTrainer& t) { return t.trainer->words_per_epoch(); })
      .def("progress", [](const PyTrainer& t) {
             const TrainerProgress p = t.trainer->progress();
             return py::make_tuple(p.words, p.examples, p.loss, p.alpha);
           }, "(words read, examples in the loss, loss sum, alpha) so far.");
}
