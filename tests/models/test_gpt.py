"""GPT: packed documents never see each other and restart their positions (a packed row equals
each document run alone, learned and rotary positions), the fused loss equals the cross-entropy
(with label smoothing and z-loss) on the materialised logits, GPT-2's initialisation and tied
embeddings, and cached generation equals recomputing the whole sequence each step."""

import math

import pytest
import torch
import torch.nn.functional as F

from fastpretrain.models import GPT, create_model, model_config

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**overrides) -> GPT:
    torch.manual_seed(0)
    return create_model("gpt_tiny", vocab_size=97, block_size=32, **overrides).eval()


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_packed_documents_equal_each_document_alone(positions):
    model = tiny(positions=positions)
    lengths = [7, 1, 12, 4]
    ids = torch.randint(0, 97, (sum(lengths),), generator=torch.Generator().manual_seed(1))
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    with torch.no_grad():
        packed = model(ids, cu_seqlens=cu)["logits"]
        alone = torch.cat([model(doc[None])["logits"][0] for doc in ids.split(lengths)])
        crossing = model(ids[None])["logits"][0]  # one causal sequence: later documents see earlier ones
    torch.testing.assert_close(packed, alone, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(packed[7:], crossing[7:], atol=1e-3)


@pytest.mark.parametrize(("smoothing", "z_loss"), [(0.0, 0.0), (0.1, 1e-3)])
def test_fused_loss_equals_cross_entropy_on_the_logits(smoothing, z_loss):
    model = tiny(label_smoothing=smoothing, z_loss=z_loss).train()
    ids = torch.randint(0, 97, (3, 10), generator=torch.Generator().manual_seed(2))
    labels = torch.cat([ids[:, 1:], torch.full((3, 1), -100)], 1)
    out = model(ids, labels)
    logits = model(ids)["logits"].reshape(-1, 97)
    flat = labels.reshape(-1)
    want = F.cross_entropy(logits, flat, label_smoothing=smoothing)
    want = want + z_loss * torch.logsumexp(logits, -1)[flat != -100].square().mean()
    torch.testing.assert_close(out["loss"], want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["nll"], F.cross_entropy(logits, flat).detach(), atol=1e-5, rtol=1e-5)
    assert int(out["items"]) == 27
    grads = torch.autograd.grad(out["loss"], [model.wte.weight, model.layers[0].attn.qkv.weight])
    expected = torch.autograd.grad(want, [model.wte.weight, model.layers[0].attn.qkv.weight])
    for a, b in zip(grads, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_gpt2_initialisation_and_tied_embeddings():
    torch.manual_seed(0)
    model = create_model("gpt_mini", vocab_size=3000)
    c = model.config
    assert "lm_head.weight" not in model.state_dict() and model.layers[0].mlp.act.approximate == "tanh"
    assert model.wte.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.layers[0].attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    proj = torch.cat([torch.cat([b.attn.proj.weight.flatten(), b.mlp.fc2.weight.flatten()]) for b in model.layers])
    assert proj.std().item() == pytest.approx(0.02 / math.sqrt(2 * c.num_layers), rel=0.05)
    assert all(b.attn.qkv.bias.abs().sum() == 0 for b in model.layers)
    n = sum(p.numel() for p in create_model("gpt_124m").parameters())
    assert n == 124_439_808  # GPT-2 small, tied head (as Hugging Face's gpt2 counts it)


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_cached_generation_equals_recomputing(positions):
    model = tiny(positions=positions)
    prompt = torch.randint(0, 97, (2, 5), generator=torch.Generator().manual_seed(3))
    got = model.generate(prompt, 9, temperature=0)
    want = prompt
    with torch.no_grad():
        for _ in range(9):
            want = torch.cat([want, model(want)["logits"][:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(got, want)
    assert torch.equal(model.generate(prompt, 9, top_k=1), want)  # top-1 sampling is greedy
    g = torch.Generator().manual_seed(4)
    sampled = model.generate(prompt[:1], 1, temperature=2.0, top_k=3, generator=g)
    with torch.no_grad():
        top3 = model(prompt[:1])["logits"][0, -1].topk(3).indices
    assert sampled[0, -1] in top3


def test_bad_input_is_named():
    model = tiny()
    with pytest.raises(ValueError, match="positions: expected one of"):
        model_config("gpt_tiny", positions="alibi")
    with pytest.raises(ValueError, match="num_heads: 3 heads split width 128"):
        model_config("gpt_tiny", num_heads=3)
    with pytest.raises(ValueError, match="input_ids: a sequence of 40 tokens is longer than block_size 32"):
        model(torch.zeros(1, 40, dtype=torch.long))
    with pytest.raises(ValueError, match="input_ids: expected dense"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="labels: expected the shape of input_ids"):
        model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="max_new_tokens: 5 prompt \\+ 30 new tokens exceed block_size 32"):
        model.generate(torch.zeros(1, 5, dtype=torch.long), 30)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(torch.zeros(1, 5, dtype=torch.long), 1, temperature=-1.0)
