"""Which dtypes a kernel test runs in, on this machine.

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
