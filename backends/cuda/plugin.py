"""The `cuda` target plugin: TVM CUDA target per arch, dlight GPU schedules, [K, N] matmuls, flash attention."""
from __future__ import annotations

from typing import Any

from .arch import DEFAULT_ARCH, cuda_arch
from .capabilities import cuda_capabilities
from .matmul import CudaMatmul
from .schedules import make_schedule
from .target import cuda_target


class CudaPlugin:
    """NVIDIA sm_80 / sm_90a through TVM's CUDA codegen; kernels compiled ahead of time by nvcc."""

    name = "cuda"
    description = "NVIDIA GPU sm_80 (A100) / sm_90a (H100, H200) through TVM CUDA codegen + nvcc"

    def __init__(self):
        self.arch = DEFAULT_ARCH
        self.forced_tile: tuple | None = None   # options q_block / kv_block: taken as given, checked, never shrunk
        self.mla: set[tuple] = set()            # dims of absorbed-MLA attention (attention/mla.py), set per lower()
        self.matmul = CudaMatmul(lambda: self.arch)

    @property
    def hardware(self) -> str:
        return cuda_arch(self.arch).hardware

    @property
    def capabilities(self):
        return cuda_capabilities(self.arch)

    def tvm_target(self, options: dict[str, Any]) -> dict:
        """options["arch"]: sm_80 | sm_90a (default) or an alias (a100, h100, h200); options["q_block"] /
        ["kv_block"] force the attention tile. The schedules of the build that follows use this arch's limits."""
        target = cuda_target(options)
        self.arch = target["arch"]
        self.forced_tile = (options.get("q_block"), options.get("kv_block"))
        return target

    def schedule(self, kind: str):
        return make_schedule(kind, lambda: self.arch)

    def attention_primfunc(self, cfg, target: dict):
        """(PrimFunc, metadata) of the flash kernel for `cfg` (prefill, or split-KV decode + combine)."""
        from .attention import attention_primfunc

        return attention_primfunc(cfg, target, self.forced_tile, self.mla)

    def prepare_runtime(self, target: dict) -> list[str]:
        from .program import cuda_device

        if cuda_device() is None:
            return [f"no CUDA device here: kernels are generated and compiled (nvcc, {target['arch']}) but run "
                    "only on a GPU machine (export the model)"]
        return []
