"""Triton kernels of fastpretrain, installed as ``fastpretrain.kernels``.

One module per kernel family (``attention.py``, ``cross_entropy.py``, ``infonce.py``, ``masking.py``,
``points.py``, ``sampled_softmax.py``, ``word2vec.py``): only ``@triton.jit`` functions and thin launchers taking
tensors, which make their inputs contiguous (or pass strides). Autograd, validation and dispatch
live in ``fastpretrain.ops``. What a kernel and its op must agree on (sizes, bit widths, limits,
output layouts) is in ``contract.py``, which imports no triton, so the ops load where triton is
absent (macOS).

Block configs, one convention in every file: an ``INTERPRETER_CONFIG`` of tiny blocks (tests on
small shapes still span several blocks) beside the GPU choice (``GPU_CONFIG``, or a rule of the
shape where one config does not fit all), picked in the launcher by ``target.on_gpu`` and sized
to the device by ``target.sm_count``. There is no runtime autotune: GPU minutes are scarce, so
configs are chosen offline (``benchmarks/tune_attention.py`` times them on a GPU) and every GPU
config must pass the Hopper compile gate (``benchmarks/kernel_resources.py``) before it lands.
"""
