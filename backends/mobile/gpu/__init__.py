"""`mobile-gpu`: OpenCL kernels for Adreno/Mali-class GPUs, a plugin on the shared core (backends/core).

plugin.py (the plugin), spec.py (device limits and Capabilities from cost_models/specs/mobile-gpu.json, no TVM),
schedules.py / matmul.py / attention.py (kernels), compile.py (OpenCL library), executor.py (pyopencl runner),
backend.py (the target's backend). Importing this package imports no TVM.
"""
