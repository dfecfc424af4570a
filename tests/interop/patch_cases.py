"""Shared checks for the fastpretrain.patch tests: a patched model against the model it came from.

- :func:`assert_patched_close`: one forward and backward of the same weights on the same batch,
  the patched model through the kernels (the Triton interpreter on CPU) against HF's own code, by
  the flash-attention rule: |patched - fp64 HF| <= 2 |fp32 HF - fp64 HF| + a few ulps, for every
  compared output and every parameter's gradient.
- :func:`assert_same_curve`: Liger-Kernel's convergence test: the same model trained 50 AdamW steps
  patched (kernels) and unpatched, loss by loss within ``rtol``, and the loss goes down.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from kernel_cases import assert_flash_bound

import fastpretrain

STEPS = 50


def _double(value):
    if torch.is_tensor(value) and value.is_floating_point():
        return value.double()
    if isinstance(value, dict):
        return {k: _double(v) for k, v in value.items()}
    return value


def run(model, batch: dict, step, context) -> tuple[dict, dict]:
    """(outputs, gradients by parameter name) of ``step(model, batch) -> (loss, {name: tensor})``."""
    model.zero_grad(set_to_none=True)
    with context():
        loss, outputs = step(model, batch)
        loss.backward()
    outputs = {"loss": loss.detach(), **{k: v.detach() for k, v in outputs.items()}}
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    return outputs, grads


def assert_patched_close(model, batch: dict, step, kernel_path, *, ulps: float = 64.0, **patch_options) -> None:
    """``step`` on ``model`` patched (through the kernels) within the flash-attention rule of the
    same ``step`` unpatched, outputs and every gradient; returns nothing, raises on a miss."""
    device, kernels = kernel_path
    model = model.to(device)
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    same = run(model, batch, step, torch.enable_grad)
    ref = run(copy.deepcopy(model).double(), _double(batch), step, torch.enable_grad)
    patched = copy.deepcopy(model)
    fastpretrain.patch(patched, **patch_options)
    got = run(patched, batch, step, kernels)
    assert got[1].keys() == ref[1].keys(), "patched and unpatched models have gradients for different parameters"
    for part in (0, 1):
        names = list(ref[part])
        assert_flash_bound(names, [got[part][n] for n in names], [ref[part][n] for n in names],
                           [same[part][n] for n in names], ulps=ulps, dtype=torch.float32)  # fmt: skip


def curve(model, batches: list[dict], loss_of, context, lr: float) -> list[float]:
    """Losses of ``STEPS`` AdamW steps on ``batches`` (cycled) under ``context``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for step in range(STEPS):
        with context():
            loss = loss_of(model, batches[step % len(batches)])
            optimizer.zero_grad()
            loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def assert_same_curve(make_model, batches: list[dict], loss_of, kernel_path, *, lr: float = 3e-3,
                      rtol: float = 1e-4, drop: float = 0.9) -> None:  # fmt: skip
    """The loss curves of ``make_model()`` trained unpatched and patched agree step by step within
    ``rtol``, and the last five steps' mean is below ``drop`` x the first five's."""
    device, kernels = kernel_path
    batches = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()} for b in batches]
    torch.manual_seed(0)
    reference = curve(make_model().to(device).train(), batches, loss_of, torch.enable_grad, lr)
    torch.manual_seed(0)
    model = make_model().to(device).train()
    fastpretrain.patch(model)
    patched = curve(model, batches, loss_of, kernels, lr)
    ref, got = np.array(reference), np.array(patched)
    gap = np.abs(got - ref) / np.abs(ref)
    worst = int(gap.argmax())
    assert gap[worst] <= rtol, f"step {worst}: patched {got[worst]:.6f}, HF {ref[worst]:.6f} ({gap[worst]:.2e})"
    assert ref[-5:].mean() < drop * ref[:5].mean(), f"the loss did not go down: {ref.round(3).tolist()}"


def same_state_dict(a: dict, b: dict) -> None:
    """The same keys, shapes, dtypes and values."""
    assert list(a) == list(b)
    for key, value in a.items():
        assert value.dtype == b[key].dtype and torch.equal(value, b[key]), key
