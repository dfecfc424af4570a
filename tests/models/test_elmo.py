"""ELMo: characters as ELMo encodes them, the forward LM sees only the past and the backward LM
only the future, the eval loss is the two directions' full-softmax cross-entropy written out,
padding changes no sentence's vectors, the same word gets different vectors in different real
sentences (and the same in the same one), the model learns a learnable stream, ScalarMix is its
formula."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastpretrain.data.word_lm import TokenBlocks, tokenize
from fastpretrain.models import create_model
from fastpretrain.models.elmo import ELMo, ELMoConfig, char_ids, char_tensor
from fastpretrain.nn.scalar_mix import ScalarMix

pytestmark = pytest.mark.usefixtures("one_thread")
WORDS = [f"w{i}" for i in range(40)]


def tiny(**kw):
    torch.manual_seed(0)
    kw = {"num_sampled": 8, **kw}
    config = ELMoConfig(vocab_size=40, char_dim=4, filter_widths=(1, 2, 3), filter_counts=(4, 4, 8), lstm_dim=12,
                        projection_dim=6, dropout=0.0, **kw)  # fmt: skip
    return ELMo(config).set_vocabulary(WORDS)


def test_char_ids_are_elmos():
    assert char_ids("ab", 6) == [259, 98, 99, 260, 261, 261]
    assert char_ids("é", 5) == [259, 0xC3 + 1, 0xA9 + 1, 260, 261]
    assert char_ids("abcdef", 5) == [259, 98, 99, 100, 260]  # cut to max_chars - 2 bytes
    chars = char_tensor([["ab"], ["a", "b"]], 6)
    assert chars.shape == (2, 2, 6) and (chars[0, 1] == 0).all() and chars[1, 1].tolist() == char_ids("b", 6)


def test_directions_see_only_their_side():
    model = tiny().eval()
    chars = char_tensor([[f"w{i}" for i in range(7)]], model.config.max_chars)
    changed = chars.clone()
    changed[0, 3] = torch.tensor(char_ids("other", model.config.max_chars))
    a, b = model.layers(chars), model.layers(changed)
    p = model.config.projection_dim
    same = (a - b).abs().amax(-1)[:, 0]  # [K + 1, T]
    assert (same[0, :3] == 0).all() and same[0, 3] > 0 and (same[0, 4:] == 0).all()
    fwd, bwd = (a - b)[1:, 0, :, :p].abs().amax(-1), (a - b)[1:, 0, :, p:].abs().amax(-1)
    assert (fwd[:, :3] == 0).all() and (fwd[:, 3:] > 0).all()
    assert (bwd[:, 4:] == 0).all() and (bwd[:, :4] > 0).all()


def test_eval_loss_is_both_directions_cross_entropy():
    model = tiny().eval()
    tokens = torch.randint(0, 40, (2, 9))
    out = model(tokens)
    chars = model.char_table[tokens].long()
    layers = model.layers(chars)
    p = model.config.projection_dim
    fwd, bwd = layers[-1][..., :p], layers[-1][..., p:]
    logits = lambda h: h @ model.output.weight.T + model.output.bias
    f = F.cross_entropy(logits(fwd[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten())
    b = F.cross_entropy(logits(bwd[:, 1:]).flatten(0, 1), tokens[:, :-1].flatten())
    torch.testing.assert_close(out["forward_loss"], f, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["backward_loss"], b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["nll"], (f + b) / 2, atol=1e-5, rtol=1e-5)
    assert out["items"] == 16


def test_padding_changes_no_sentence():
    model = tiny().eval()
    short, long = ["w1", "w2", "w3"], ["w4", "w5", "w6", "w7", "w8", "w9"]
    alone = model.layers(char_tensor([short]))[:, 0]
    batched = model.layers(char_tensor([short, long]))[:, 0, :3]
    torch.testing.assert_close(batched, alone, atol=1e-6, rtol=1e-5)


def test_training_is_sampled_and_reaches_every_parameter():
    model = tiny(residual=True).train()
    tokens = torch.randint(0, 40, (3, 10))
    out = model(tokens)
    assert "nll" not in out
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_it_learns_a_learnable_stream():
    """A repeating 10-word cycle, trained with 20 sampled candidates of 40: both directions'
    full-softmax perplexity falls from about 40 to below 2 (1.5 and 1.3 measured)."""
    model = tiny(num_sampled=20)
    ids = np.tile(np.random.default_rng(0).permutation(40)[:10], 30).astype(np.int32)
    blocks = TokenBlocks(ids, length=12, overlap=1)
    batch = torch.stack([blocks[i] for i in range(len(blocks))])
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(100):
        opt.zero_grad()
        model.train()(batch)["loss"].backward()
        opt.step()
    with torch.no_grad():
        out = model.eval()(batch)
    assert out["forward_loss"].exp() < 2 and out["backward_loss"].exp() < 2, out


def test_same_word_in_real_sentences(shared_data):
    """Layer 0 of "bank" is one vector; its LSTM layers differ between a river bank and a bank
    loan, and not between two copies of the same sentence."""
    model = create_model("elmo_tiny").eval()
    sentences = [tokenize(s, lowercase=False) for s in (
        "He sat on the bank of the river and watched the water.",
        "She asked the bank for a loan to buy the house.",
        "He sat on the bank of the river and watched the water.")]  # fmt: skip
    layers = torch.stack([model.layers(char_tensor([s]))[:, 0, s.index("bank")] for s in sentences])  # [3, K+1, 2P]
    assert torch.equal(layers[0, 0], layers[1, 0])
    for k in range(1, layers.shape[1]):
        assert F.cosine_similarity(layers[0, k], layers[1, k], 0) < 0.9999
        torch.testing.assert_close(layers[0, k], layers[2, k])


def test_scalar_mix_is_its_formula():
    g = torch.Generator().manual_seed(0)
    layers = torch.randn(3, 2, 5, 7, generator=g)
    mix = ScalarMix(3, initial=[0.5, -1.0, 2.0])
    with torch.no_grad():
        mix.gamma.fill_(1.7)
    w = torch.softmax(torch.tensor([0.5, -1.0, 2.0]), 0)
    torch.testing.assert_close(mix(layers), 1.7 * (w[:, None, None, None] * layers).sum(0))
    mix(layers).sum().backward()
    assert mix.scalars.grad.abs().sum() > 0 and mix.gamma.grad is not None
    normed = ScalarMix(3, layer_norm=True)(list(layers))
    torch.testing.assert_close(normed, F.layer_norm(layers, (7,)).mean(0))
    with pytest.raises(ValueError, match="layers: expected 3 layers, got 2"):
        mix(layers[:2])


def test_bad_config_and_inputs():
    with pytest.raises(ValueError, match="filter_counts: expected one count per width"):
        ELMoConfig(filter_widths=(1, 2), filter_counts=(3,))
    with pytest.raises(ValueError, match="filter_widths: 60 is above max_chars"):
        ELMoConfig(filter_widths=(60,), filter_counts=(3,))
    with pytest.raises(ValueError, match="projection_dim"):
        ELMoConfig(lstm_dim=8, projection_dim=16)
    model = tiny()
    with pytest.raises(ValueError, match="words: expected 40 words"):
        model.set_vocabulary(["a"])
    with pytest.raises(ValueError, match=r"tokens: expected \[B, L \+ 1\]"):
        model(torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"chars: expected \[B, T, 50\]"):
        model.layers(torch.zeros(2, 3, 7, dtype=torch.long))
