"""Per-architecture CUDA limits, without TVM (the tile pass, the resource checks and reports read them).

Every figure carries its source. "Guide" is the CUDA C++ Programming Guide, table "Technical Specifications
per Compute Capability" (https://docs.nvidia.com/cuda/cuda-c-programming-guide/#features-and-technical-specifications);
whitepapers: NVIDIA A100 Tensor Core GPU Architecture (2020), NVIDIA H100 Tensor Core GPU Architecture (2022).
Device-level sizes (SM count, shared memory per SM, L2) come from cost_models/specs/*.json, which cite them.
"""
from __future__ import annotations

from dataclasses import dataclass

GUIDE = "CUDA C++ Programming Guide, Technical Specifications per Compute Capability"
CC_LIST = "NVIDIA CUDA GPUs compute capability table (https://developer.nvidia.com/cuda-gpus)"
PTX = "PTX ISA, warp-level matrix instructions mma.sync (https://docs.nvidia.com/cuda/parallel-thread-execution/)"


@dataclass(frozen=True)
class CudaArch:
    """The limits one compute capability sets on a kernel launch (per block, per SM, per thread)."""

    arch: str                        # nvcc -arch name
    compute_capability: str
    hardware: str                    # cost_models/specs entry priced for this arch
    devices: tuple[str, ...]         # every catalog entry of this compute capability (reports price them as this build)
    max_threads_per_block: int
    max_threads_per_sm: int
    warp_size: int
    registers_per_sm: int            # 32-bit registers
    registers_per_block: int
    max_registers_per_thread: int
    static_shared_per_block: int     # bytes a kernel may declare statically (__shared__ arrays)
    max_shared_per_block: int        # bytes with the dynamic-shared-memory opt-in
    shared_per_sm: int
    tensor_core_shapes: tuple[str, ...]
    tensor_core_dtypes: tuple[str, ...]
    sources: dict


_COMMON_SOURCES = {
    "max_threads_per_block": GUIDE + ": 1024 for every compute capability >= 2.0",
    "warp_size": GUIDE + ": 32",
    "registers_per_sm": GUIDE + ": 64K 32-bit registers per SM (cc 8.0 and 9.0)",
    "registers_per_block": GUIDE + ": 64K 32-bit registers per thread block (cc 8.0 and 9.0)",
    "max_registers_per_thread": GUIDE + ": 255",
    "static_shared_per_block": "CUDA C++ Programming Guide, Shared Memory section: static allocations above 48 KB "
                              "are not allowed; larger blocks need dynamic shared memory and an explicit opt-in",
    "max_threads_per_sm": GUIDE + ": 2048 (cc 8.0 and 9.0)",
}

ARCHES: dict[str, CudaArch] = {
    "sm_80": CudaArch(
        arch="sm_80", compute_capability="8.0", hardware="a100-80gb", devices=("a100-80gb",),
        max_threads_per_block=1024, max_threads_per_sm=2048, warp_size=32,
        registers_per_sm=65536, registers_per_block=65536, max_registers_per_thread=255,
        static_shared_per_block=48 * 1024, max_shared_per_block=163 * 1024, shared_per_sm=164 * 1024,
        tensor_core_shapes=("mma.sync m16n8k16", "mma.sync m16n8k8", "ldmatrix x1/x2/x4"),
        tensor_core_dtypes=("float16", "bfloat16", "tf32", "int8"),
        sources={**_COMMON_SOURCES,
                 "max_shared_per_block": GUIDE + ": 163 KB per block for cc 8.0",
                 "shared_per_sm": GUIDE + ": 164 KB per SM for cc 8.0; A100 whitepaper: 192 KB combined L1/shared "
                                          "per SM, up to 164 KB shared",
                 "tensor_core_shapes": PTX + ": m16n8k16 f16/bf16 from sm_80; A100 whitepaper: third-generation "
                                             "tensor cores with FP16, BF16, TF32, INT8",
                 "tensor_core_dtypes": "A100 whitepaper (third-generation Tensor Cores)",
                 "devices": CC_LIST + ": A100 is compute capability 8.0"}),
    "sm_90a": CudaArch(
        arch="sm_90a", compute_capability="9.0", hardware="h100-sxm",
        devices=("h100-sxm", "h100-pcie", "h200", "h800-sxm"),
        max_threads_per_block=1024, max_threads_per_sm=2048, warp_size=32,
        registers_per_sm=65536, registers_per_block=65536, max_registers_per_thread=255,
        static_shared_per_block=48 * 1024, max_shared_per_block=227 * 1024, shared_per_sm=228 * 1024,
        tensor_core_shapes=("mma.sync m16n8k16", "wgmma.mma_async m64nNk16 (sm_90a only)", "ldmatrix x1/x2/x4"),
        tensor_core_dtypes=("float16", "bfloat16", "tf32", "int8", "float8"),
        sources={**_COMMON_SOURCES,
                 "max_shared_per_block": GUIDE + ": 227 KB per block for cc 9.0",
                 "shared_per_sm": GUIDE + ": 228 KB per SM for cc 9.0; H100 whitepaper: 256 KB combined L1/shared "
                                          "per SM, up to 228 KB shared",
                 "tensor_core_shapes": PTX + "; wgmma.mma_async needs the sm_90a target (PTX ISA 8.0); H100 "
                                             "whitepaper: fourth-generation tensor cores",
                 "tensor_core_dtypes": "H100 whitepaper (fourth-generation Tensor Cores add FP8)",
                 "devices": CC_LIST + ": H100 (SXM, PCIe), H200 and H800 are compute capability 9.0"}),
}
ALIASES = {"sm_90": "sm_90a", "a100": "sm_80", "h100": "sm_90a", "h200": "sm_90a"}
DEFAULT_ARCH = "sm_90a"


class CudaArchError(ValueError):
    """An arch the cuda target does not support; names the supported ones."""


def cuda_arch(name: str | None = None) -> CudaArch:
    """The limits of `name` (sm_80, sm_90a, or an alias such as h100); default sm_90a."""
    key = ALIASES.get(name or DEFAULT_ARCH, name or DEFAULT_ARCH)
    if key not in ARCHES:
        raise CudaArchError(f"cuda target: unsupported arch {name!r}; supported: {', '.join(ARCHES)} "
                            f"(aliases: {', '.join(ALIASES)})")
    return ARCHES[key]
