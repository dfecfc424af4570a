"""Which path the ops take: ``use_kernels(False)`` sends every op to its reference, forward and
backward, even where the kernels would run (a GPU, stood in for by ``target.gpu_launches``, which
makes CPU tensors take the GPU path); as a setter and as a context manager."""

import importlib

import pytest
import torch
from fastpretrain.kernels import target

from fastpretrain import ops
from fastpretrain.ops.dispatch import use_kernel

LAUNCHERS = {
    "attention": ("attention_forward", "attention_backward"),
    "cross_entropy": ("linear_cross_entropy_forward", "linear_cross_entropy_backward"),
    "infonce": ("infonce_lse", "infonce_col_lse", "siglip_rows", "contrastive_backward"),
    "masking": ("masking_from_noise", "gather_forward", "gather_backward", "unshuffle_forward", "unshuffle_backward"),
    "sampled_softmax": ("sampled_softmax_forward", "sampled_softmax_backward"),
    "word2vec": ("ns_update", "hs_update", "shared_update"),
}


@pytest.fixture
def launches(monkeypatch):
    """Every kernel launcher replaced by one that records its name and refuses to run."""
    called = []
    for module, names in LAUNCHERS.items():
        kernels = importlib.import_module(f"fastpretrain.kernels.{module}")
        for name in names:

            def refuse(*args, name=name, **kwargs):
                called.append(name)
                raise RuntimeError(f"{name} launched")

            monkeypatch.setattr(kernels, name, refuse)
    return called


def every_op() -> list[torch.Tensor]:
    """Each public op once on tiny CPU inputs, forward and backward; the outputs and gradients."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, 5, 16, generator=g, requires_grad=True)
    out = [ops.attention(q, q, q, causal=True), ops.attention_varlen(q[0].transpose(0, 1), q[0].transpose(0, 1),
           q[0].transpose(0, 1), torch.tensor([0, 2, 5], dtype=torch.int32), 3)]  # fmt: skip
    hidden, weight = torch.randn(4, 8, generator=g, requires_grad=True), torch.randn(6, 8, generator=g)
    out.append(ops.linear_cross_entropy(hidden, weight, torch.tensor([0, 5, 2, 1])))
    out.append(ops.sampled_softmax_loss(hidden, weight, torch.tensor([0, 5, 2, 1]), torch.tensor([3, 4]),
                                        torch.zeros(4), torch.zeros(2)))  # fmt: skip
    out.append(ops.infonce_loss(hidden, weight, 2.0, symmetric=False))
    out.append(ops.siglip_loss(hidden, weight, 2.0, -1.0))
    m = ops.random_masking(2, 6, 0.5, generator=torch.Generator().manual_seed(1))
    x = torch.randn(2, 6, 4, generator=g, requires_grad=True)
    visible = ops.gather_visible(x, torch.zeros(6, 4), m.ids_keep)
    tokens = torch.cat([visible[:, :1], visible], 1)
    out += [*m, visible, ops.unshuffle_tokens(tokens, torch.zeros(4), torch.zeros(7, 4), m.ids_restore)]
    syn0, syn1 = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    ids = torch.tensor([[1], [2]])
    out.append(ops.word2vec_ns_update_(syn0, syn1, ids, torch.tensor([3, 4]), torch.tensor([[0], [1]]), 0.1))
    codes, points = torch.zeros(5, 2, dtype=torch.int8), torch.zeros(5, 2, dtype=torch.int32)
    out.append(ops.word2vec_hs_update_(syn0, syn1, ids, torch.tensor([3, 4]), codes, points, torch.ones(5).int(), 0.1))
    out.append(ops.word2vec_shared_ns_update_(syn0, syn1, ids, torch.tensor([3, 4]), torch.tensor([[0], [1]]), 0.1))
    losses = [t.float().sum() for t in out if t.requires_grad]
    return out + list(torch.autograd.grad(sum(losses), [q, hidden, x]))


def test_use_kernels_false_runs_every_op_on_its_reference_where_kernels_would_run(launches):
    want = every_op()
    with target.gpu_launches(), pytest.raises(RuntimeError, match="launched"):
        every_op()  # the kernel path, as on a GPU: the first launch is refused
    assert launches
    launches.clear()
    with target.gpu_launches(), ops.use_kernels(False):
        got = every_op()
    assert launches == []
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))


def test_use_kernels_is_a_setter_and_a_context_manager():
    t = torch.zeros(1)
    with target.gpu_launches():
        assert use_kernel(t)
        ops.use_kernels(False)
        try:
            assert not use_kernel(t)
            with ops.use_kernels(True):
                assert use_kernel(t)
            assert not use_kernel(t)
        finally:
            ops.use_kernels(True)
        assert use_kernel(t)
        with pytest.raises(KeyError), ops.use_kernels(False):
            raise KeyError("restored on errors too")
        assert use_kernel(t)
    with pytest.raises(TypeError, match="enabled: expected a bool, got int"):
        ops.use_kernels(0)
