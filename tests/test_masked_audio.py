"""The audio modality of ``fastpretrain masked``: the tokenizer standardises each mel band then cuts
spans, the collate's cluster ids are the fitted targets' ids of those values; a small HuBERT-style
model learns to predict masked spans' cluster ids better than their prior (the entropy of the ids);
``masked train --modality audio`` then ``masked eval`` on a small synthesised set; bad flags name
the flag. Skips without the espeakng-loader wheel."""

import json

import pytest
import torch

from fastpretrain.cli import main
from fastpretrain.data import spoken_words
from fastpretrain.data.audio import AudioTokenizer, ClusterCollate
from fastpretrain.data.audio_targets import ClusterTargets
from fastpretrain.data.espeak import espeak_available
from fastpretrain.data.frame_spans import FrameSpans
from fastpretrain.data.log_mel import LogMelConfig
from fastpretrain.models import create_model

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not espeak_available(), reason="needs the espeakng-loader wheel")]  # fmt: skip


@pytest.fixture
def small_set(monkeypatch):
    """Two accents, 3 train and 2 test variants: 120 + 80 clips with one take each."""
    monkeypatch.setattr(spoken_words, "ACCENTS", ("en-us", "en"))
    monkeypatch.setattr(spoken_words, "VARIANTS", {"train": ("m1", "f1", "m3"), "test": ("m5", "f4")})


def test_tokenizer_standardises_and_collate_adds_cluster_ids():
    frames = torch.randn(3, 9, 4) * 3 + 1
    mean, std = [0.5, 1.0, -1.0, 2.0], [1.0, 2.0, 4.0, 0.5]
    tokenizer = AudioTokenizer(2, mean, std)
    groups = tokenizer(frames)
    want = FrameSpans(2)((frames - torch.tensor(mean)) / torch.tensor(std))
    assert torch.equal(groups.values, want.values) and torch.equal(groups.positions, want.positions)
    targets = ClusterTargets.fit(groups.values, 3, seed=0)
    batch = ClusterCollate(tokenizer, targets)([(frames[i], 0) for i in range(3)])
    assert torch.equal(batch["values"], groups.values) and torch.equal(batch["clusters"], targets(groups.values))
    assert batch["clusters"].shape == (3, 4)
    with pytest.raises(ValueError, match="frames: expected log-mel frames \\[B, T, 4\\]"):
        tokenizer(torch.randn(2, 9, 5))


def test_values_target_fits_no_clusters(small_set, monkeypatch):
    """Only the clusters target reads k-means ids: with --target values nothing is fitted and the
    batches carry values and positions alone."""
    import argparse

    from fastpretrain.data.audio import Audio

    def refuse(*args, **kwargs):
        raise AssertionError("k-means fitted for the values target")

    monkeypatch.setattr(ClusterTargets, "fit", refuse)
    modality = Audio()
    args = argparse.Namespace(audio_takes=1, audio_seed=0, audio_mels=24, audio_span=2, target="values")
    data = modality.train_data(args, modality.settings(args))
    batch = data.collate_fn([data.dataset[0], data.dataset[1]])
    assert sorted(batch) == ["positions", "values"] and not any("k-means" in line for line in data.lines)


def test_masked_cluster_prediction_beats_the_prior(small_set):
    torch.manual_seed(0)
    train = spoken_words.SpokenWords("train", spoken_words.SpokenWordsConfig(takes=1, clip_seconds=0.7),
                                     LogMelConfig(n_mels=24))  # fmt: skip
    flat = train.frames.reshape(-1, 24)
    tokenizer = AudioTokenizer(2, flat.mean(0).tolist(), flat.std(0).tolist())
    values, positions = tokenizer(train.frames)
    clusters = ClusterTargets.fit(values, 16, seed=0)(values)
    p = torch.bincount(clusters.flatten(), minlength=16).float() / clusters.numel()
    prior = -(p[p > 0] * p[p > 0].log()).sum().item()  # the best loss without looking at the context
    model = create_model("masked_groups_tiny", group_dim=48, embed_dim=64, depth=2, num_heads=2, decoder_embed_dim=32,
                         decoder_num_heads=2, encoder="full", masking="span", target="clusters", num_clusters=16)  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        idx = torch.randint(len(values), (32,), generator=g)
        loss = model(values[idx], positions[idx], clusters=clusters[idx], generator=g)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        final = model(values, positions, clusters=clusters, generator=torch.Generator().manual_seed(1))["loss"].item()
    assert final < prior - 0.5, (final, prior)  # seen: 1.64 vs a prior of 2.52 (log 16 = 2.77)


def test_masked_train_eval_audio(small_set, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["masked", "train", "--modality", "audio", "--audio-takes", "1", "--audio-mels", "16",
                 "--num-clusters", "8", "--embed-dim", "32", "--num-heads", "2", "--depth", "1",
                 "--decoder-embed-dim", "32", "--decoder-num-heads", "2", "--steps", "3", "--batch-size", "8",
                 "--log-every", "1", "--out-dir", str(run)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "120 clips of 81 frames x 16 mels, 20 words, 6 voices; 40 groups of 2 frames" in out
    assert "k-means of the 4,800 train spans, k 8" in out and "span masking, clusters target" in out
    config = json.loads((run / "config.json").read_text())
    assert config["modality"] == "audio" and config["num_clusters"] == 8 and config["group_dim"] == 32
    assert config["encoder"] == "full" and len(config["tokenizer"]["std"]) == 16
    result = tmp_path / "eval.json"
    assert main(["masked", "eval", str(run), "--json", str(result), "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert "probe on 120 train / 80 test items, 20 classes" in out
    rows = json.loads(result.read_text())["results"]
    assert set(rows) == {"ours", "random init", "raw input"} and all(0 <= r["linear"] <= 1 for r in rows.values())
    assert rows["raw input"]["linear"] > 4 / 20  # mean + std per band decode words on unseen voices


@pytest.mark.parametrize("flag, value", [("--audio-span", "0"), ("--audio-mels", "0"), ("--audio-takes", "0")])
def test_bad_flags_name_the_flag(flag, value, tmp_path, capsys):
    assert main(["masked", "train", "--modality", "audio", flag, value, "--out-dir", str(tmp_path / "run")]) == 2
    assert f"error: {flag}: expected an int >= 1, got 0" in capsys.readouterr().err
