"""CLIP: generated captions (attributes read off the pixels, fixed-length ids with the end token last),
the retrieval metrics on embeddings whose answers are known, the model's loss is CLIP's written out
on its two towers, the text tower reads up to the end token only, and the CLI trains and evaluates
a tiny run on the real Fashion-MNIST and BERT vocabulary."""

import json

import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from tokenizers.processors import TemplateProcessing

from fastpretrain.cli import main
from fastpretrain.data.captions import TEMPLATES, CaptionedImages, attributes, caption, tokenize
from fastpretrain.eval.retrieval import retrieval_recall, zero_shot_accuracy
from fastpretrain.models import CLIP, create_model

pytestmark = pytest.mark.usefixtures("one_thread")


def word_tokenizer(words=("a", "photo", "of", "dark", "light", "bag", "dress", ".")):
    vocab = {w: i for i, w in enumerate(("[PAD]", "[UNK]", "[CLS]", "[SEP]", *words))}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    tok.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return tok


def test_attributes_read_tone_and_size_off_the_pixels():
    img = torch.zeros(1, 28, 28)
    img[0, 10:16, 10:16] = 0.2  # a small dark item
    assert attributes(img) == {"tone": "dark", "size": "small", "fill": "a quarter"}
    img[0, 2:26, 2:26] = 0.9  # a large light one
    assert attributes(img) == {"tone": "light", "size": "large", "fill": "most"}
    assert caption(8, img, 0) == "a photo of a light bag."
    assert caption(0, img, len(TEMPLATES)) == "a photo of a light t-shirt or top."


def test_tokenize_pads_and_keeps_the_end_token_when_cutting():
    tok = word_tokenizer()
    ids = tokenize(["a photo of a bag .", "a bag"], tok, 6)
    assert ids.tolist() == [[2, 4, 5, 6, 4, 3], [2, 4, 9, 3, 0, 0]]


def test_captioned_images_repeat_without_random_templates():
    images = [(torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(i)), i % 10) for i in range(4)]
    data = CaptionedImages(images, word_tokenizer(), 12, random_template=False)
    assert [data.pair(i)[1] for i in range(4)] == [caption(i % 10, images[i][0], i) for i in range(4)]
    img, ids = data[1]
    assert torch.equal(img, images[1][0]) and ids.shape == (12,) and ids.dtype == torch.int64


def test_retrieval_metrics_on_known_answers():
    e = torch.eye(4)
    assert retrieval_recall(e, e, (1,)) == {"image_to_text@1": 1.0, "text_to_image@1": 1.0}
    swapped = e[[1, 0, 2, 3]]  # captions 0 and 1 exchanged
    got = retrieval_recall(e, swapped, (1, 2), classes=torch.tensor([0, 0, 1, 1]))
    assert got["image_to_text@1"] == 0.5 and got["text_to_image@1"] == 0.5 and got["image_to_text@2"] == 0.5
    assert got["image_to_text_class@1"] == 1.0  # the swapped pair shares a class
    same = torch.ones(3, 2)  # every caption ties: no query is credited with a top-1 hit
    assert retrieval_recall(same, same, (1, 3))["image_to_text@1"] == 0.0
    assert retrieval_recall(same, same, (1, 3))["image_to_text@3"] == 1.0
    classes, images = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[2.0, 0.1], [0.3, 1.0], [1.0, 0.2]])
    assert zero_shot_accuracy(images, classes, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"text_emb: expected one caption per image \(4\), got 3"):
        retrieval_recall(e, e[:3])


def small_clip(**kw):
    torch.manual_seed(0)
    return create_model("clip_vit_fashion_mnist", vision_depth=1, text_depth=1, vocab_size=64, context_length=10, **kw)


def test_loss_is_the_clip_loss_written_out_and_the_temperature_learns():
    model = small_clip(temperature=0.1)
    images, ids = torch.randn(6, 1, 28, 28), torch.randint(1, 64, (6, 10))
    loss = model(images, ids)["loss"]
    x, y = F.normalize(model.encode_image(images), dim=-1), F.normalize(model.encode_text(ids), dim=-1)
    z = 10.0 * x @ y.T
    want = (F.cross_entropy(z, torch.arange(6)) + F.cross_entropy(z.T, torch.arange(6))) / 2
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-5)
    loss.backward()
    assert model.criterion.logit_scale.grad is not None and model.criterion.logit_scale.grad.abs() > 0


def test_text_tower_reads_up_to_the_end_token():
    model = small_clip().eval()
    short = torch.tensor([[2, 7, 9, 3]])
    padded = torch.cat([short, torch.zeros(1, 6, dtype=torch.int64)], 1)
    torch.testing.assert_close(model.encode_text(padded), model.encode_text(short), rtol=1e-5, atol=1e-5)
    changed = padded.clone()
    changed[0, 1] = 11
    assert not torch.allclose(model.encode_text(changed), model.encode_text(padded))
    classes = model.class_embeddings(torch.randint(1, 64, (3, 2, 10)))
    torch.testing.assert_close(classes.norm(dim=-1), torch.ones(3))


@pytest.mark.parametrize(
    "change, match",
    [({"temperature": 0.0}, "temperature: expected a float > 0"), ({"text_heads": 3}, "text_heads"),
     ({"pad_token_id": 64}, "pad_token_id: expected an int")],
)  # fmt: skip
def test_config_refuses_bad_fields(change, match):
    with pytest.raises(ValueError, match=match):
        small_clip(**change)


def test_forward_refuses_mismatched_pairs_and_long_captions():
    model = small_clip()
    with pytest.raises(ValueError, match=r"ids: expected one caption per image \(2\), got 3"):
        model(torch.randn(2, 1, 28, 28), torch.ones(3, 10, dtype=torch.int64))
    with pytest.raises(ValueError, match="context_length 10"):
        model.encode_text(torch.ones(2, 11, dtype=torch.int64))


def test_cli_trains_and_evaluates(shared_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FASTPRETRAIN_DATA", str(shared_data))
    run = tmp_path / "run"
    sizes = ["--vision-depth", "1", "--text-depth", "1", "--vision-width", "32", "--vision-heads", "2",
             "--text-width", "32", "--text-heads", "2", "--embed-dim", "16"]  # fmt: skip
    assert main(["clip", "train", *sizes, "--max-images", "32", "--batch-size", "16", "--steps", "2",
                 "--warmup-steps", "0", "--device", "cpu", "--out-dir", str(run)]) == 0  # fmt: skip
    assert "images with generated captions" in capsys.readouterr().out
    assert (run / "tokenizer" / "vocab.txt").is_file() and CLIP.from_pretrained(run).config.vocab_size == 30522
    summary = tmp_path / "eval.json"
    assert main(["clip", "eval", str(run), "--max-test", "40", "--device", "cpu", "--json", str(summary)]) == 0
    results = json.loads(summary.read_text())["results"]
    assert set(results) == {"clip", "random init"} and 0 <= results["clip"]["zero_shot"] <= 1
    assert set(results["clip"]) == {"zero_shot", "image_to_text@1", "image_to_text@5", "text_to_image@1",
                                    "text_to_image@5", "image_to_text_class@1"}  # fmt: skip
    assert (
        main(
            [
                "clip",
                "train",
                "--in-chans",
                "3",
                "--steps",
                "1",
                "--warmup-steps",
                "0",
                "--out-dir",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "--in-chans: Fashion-MNIST images have 1 channel" in capsys.readouterr().err
