"""Mobile targets as plugins on the shared backend core (backends/core).

- `mobile-cpu` (backends/mobile/cpu/): aarch64 NEON through TVM/LLVM, cross-compiled and cross-linked
  with aarch64-linux-gnu-gcc; runs here only under qemu-aarch64 emulation.
- `mobile-gpu` (backends/mobile/gpu/): OpenCL kernels (Adreno/Mali class).

Nothing here imports TVM at package import: capabilities are read from the cost-model catalog.
"""
