"""The `cuda` target: NVIDIA sm_80 (A100) and sm_90a (H100/H200) through TVM's CUDA codegen, kernels compiled
ahead of time with nvcc (backends/cuda/nvcc.py). A plugin on the shared backend core (backends/core)."""
