"""HuBERT-style cluster targets: ids are the nearest standardised centre per group, separated group
types are recovered one id each, fitting subsamples by seed, the buffers round-trip through a
state dict, and on frame spans of synthesised speech the ids group alike sounds."""

import pytest
import torch

from fastpretrain.data.audio_targets import ClusterTargets
from fastpretrain.data.frame_spans import FrameSpans


def test_ids_are_the_nearest_standardised_centre(one_thread):
    g = torch.Generator().manual_seed(0)
    values = torch.randn(4, 9, 6, generator=g) * torch.tensor([1.0, 10.0, 0.1, 1.0, 3.0, 1.0])
    targets = ClusterTargets.fit(values, 5, seed=3)
    x = values.reshape(-1, 6)
    mean, std = x.mean(0), x.std(0)
    torch.testing.assert_close(targets.mean, mean)
    torch.testing.assert_close(targets.std, std)
    want = torch.cdist((x - mean) / std, targets.centres).argmin(1).view(4, 9)
    ids = targets(values)
    assert ids.dtype == torch.int64 and torch.equal(ids, want)
    again = ClusterTargets(torch.zeros(5, 6), torch.zeros(6), torch.ones(6))
    again.load_state_dict(targets.state_dict())
    assert torch.equal(again(values), ids)


def test_separated_group_types_get_one_id_each(one_thread):
    g = torch.Generator().manual_seed(1)
    kinds = torch.randn(4, 10, generator=g) * 5
    labels = torch.randint(4, (8, 50), generator=g)
    values = kinds[labels] + 0.1 * torch.randn(8, 50, 10, generator=g)
    ids = ClusterTargets.fit(values, 4, max_points=150, seed=0)(values)
    for kind in range(4):  # each kind maps to a single id, and no two kinds share one
        assert ids[labels == kind].unique().numel() == 1
    assert ids.unique().numel() == 4


def test_fit_subsamples_by_seed(one_thread):
    values = torch.randn(1000, 3)
    a = ClusterTargets.fit(values, 3, max_points=100, seed=5)
    b = ClusterTargets.fit(values, 3, max_points=100, seed=5)
    c = ClusterTargets.fit(values, 3, max_points=100, seed=6)
    assert torch.equal(a.centres, b.centres) and torch.equal(a.mean, b.mean)
    assert not torch.equal(a.mean, c.mean)


def test_ids_of_speech_spans_group_alike_sounds(one_thread, monkeypatch):
    """On frame spans of synthesised words, the cluster id explains most of a span's loudness and of
    its spectral tilt (between-cluster / total variance), as units of alike sounds should."""
    pytest.importorskip("espeakng_loader", reason="needs the espeakng-loader wheel")
    from fastpretrain.data import spoken_words
    from fastpretrain.data.log_mel import LogMelConfig

    monkeypatch.setattr(spoken_words, "ACCENTS", ("en-us", "en"))
    monkeypatch.setattr(spoken_words, "VARIANTS", {"train": ("m1", "f1", "m3"), "test": ("m5", "f4")})
    config = spoken_words.SpokenWordsConfig(takes=1, clip_seconds=0.7)
    frames = spoken_words.SpokenWords("train", config, LogMelConfig(n_mels=24)).frames
    values = FrameSpans(2)(frames).values
    targets = ClusterTargets.fit(values, 32, seed=0)
    ids = targets(values).flatten()
    x = values.reshape(-1, 2, 24)
    for feature in (x.mean((1, 2)), x[..., 12:].mean((1, 2)) - x[..., :12].mean((1, 2))):  # loudness, tilt
        means = torch.zeros(32).index_add_(0, ids, feature) / torch.bincount(ids, minlength=32).clamp_min(1)
        explained = 1 - (feature - means[ids]).var() / feature.var()
        shuffled = ids[torch.randperm(len(ids), generator=torch.Generator().manual_seed(0))]
        means = torch.zeros(32).index_add_(0, shuffled, feature) / torch.bincount(shuffled, minlength=32).clamp_min(1)
        assert explained > 0.75 and 1 - (feature - means[shuffled]).var() / feature.var() < 0.1  # 0.96, 0.90 seen
    with pytest.raises(ValueError, match="values: expected groups of 48 values, got 24"):
        targets(frames)
