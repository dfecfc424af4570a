"""Which dtypes a kernel test runs in, on this machine, and the error bound every kernel meets.

On CPU the kernels run in the Triton interpreter: float32 and float16 on every shape (bf16 tl.dot
gives garbage there). On a GPU: float16 and bfloat16 on every shape, float32 on the first shape only
(its 'ieee' tl.dot compiles take 10-50 s each, and a GPU check has minutes). Tests marked ``gpu`` (a
module's ``pytestmark``) are the set ``pytest -m gpu`` runs on the GPU box.
"""

import pytest
import torch

ON_GPU = torch.cuda.is_available()
HALF = (torch.float16, torch.bfloat16) if ON_GPU else (torch.float16,)


def shape_dtype_cases(shapes: list[tuple]) -> list:
    """pytest params (shape, dtype) for a kernel test over ``shapes``."""
    cases = [(shape, dtype) for shape in shapes for dtype in HALF]
    fp32 = shapes[:1] if ON_GPU else shapes
    cases = [(shape, torch.float32) for shape in fp32] + cases
    return [pytest.param(s, d, id=f"{'x'.join(map(str, s))}-{str(d).removeprefix('torch.')}") for s, d in cases]


def assert_flash_bound(names, got, ref, same, *, atol: float = 0.0, ulps: float = 0.0, dtype=None) -> None:
    """The flash-attention rule, tensor by tensor: |got - ref| <= 2 |same - ref| + slack, where ``ref``
    is the reference in float32 (or float64), ``same`` the plain-torch reference in the run's dtype,
    and slack = atol + ulps * eps(dtype) * max(1, max |ref|): a few units in the last place of the
    largest value, for sums taken in another order. ``dtype``: the inputs' (default: each output's)."""
    for name, g, r, s in zip(names, got, ref, same, strict=True):
        assert g.shape == r.shape, f"{name}: shape {tuple(g.shape)} != {tuple(r.shape)}"
        err = (g.double() - r.double()).abs().max().item()
        base = (s.double() - r.double()).abs().max().item()
        slack = atol + ulps * torch.finfo(dtype or g.dtype).eps * max(1.0, r.abs().max().item())
        assert err <= 2 * base + slack, f"{name}: error {err:.3g} > 2 * {base:.3g} + {slack:.3g}"
