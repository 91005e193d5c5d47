"""The `cuda` target: the shared core (backends/core) with the cuda plugin; builds are AOT libraries
(program.py) and export folders carry the CUDA sources and fatbins beside them."""
from __future__ import annotations

import json
import os
import shutil
from typing import Any

from ...ir import Graph, graph_from_json
from ..base import Executable
from ..core.backend import PLANS_INDEX, TvmBackend
from ..core.cache import CompileCache
from ..core.plan import Plan
from ..core.program import GENERIC, decompose_variants
from ..core.errors import LoweringError
from .arch import cuda_arch
from .attention.resources import ELEM, TileError, choose_tile
from .plugin import CudaPlugin
from .program import SIDE_FILES, CudaLibrary, CudaProgram, NoCudaDeviceError, _read_info

FOLDER_NOTE = """CUDA kernels of this model, for inspection (the libraries kernels_<i>.so already carry them compiled):
  kernels_<i>.cu      the CUDA source TVM generated for build i
  kernels_<i>.fatbin  what nvcc made of it for {arch} (embedded in kernels_<i>.so; loaded with cuModuleLoadData)
Running needs an NVIDIA GPU of that arch, its driver, and TVM's runtime with CUDA
(tvm/lib/libtvm_runtime_cuda.so); no nvcc or NVRTC.
"""


def check_forced_tiles(graph: Graph, arch: str, forced: tuple | None) -> None:
    """A tile forced through the options must fit every attention op on `arch` (shared memory, threads,
    registers); otherwise a LoweringError naming the node, the op and the limit, before any codegen."""
    if not forced or not any(forced):
        return
    for node in graph.nodes:
        if node.op.op_name != "Attention":
            continue
        spec = node.op.spec
        dtype = node.inputs[0].dtype
        try:
            choose_tile(1, spec.head_dim, spec.v_head_dim, dtype if dtype in ELEM else "float32", cuda_arch(arch),
                        forced[0], forced[1], forced=True)
        except TileError as e:
            raise LoweringError(node.name, "Attention", str(e), target="cuda") from None


class CudaBackend(TvmBackend):
    """NVIDIA GPU through TVM's CUDA codegen; kernels compiled ahead of time for sm_80 or sm_90a."""

    def __init__(self, cache: CompileCache | None = None):
        super().__init__(CudaPlugin(), cache)

    def lower(self, graph: Graph, options: dict[str, Any]) -> Executable:
        """Options: arch (sm_80 | sm_90a, default sm_90a), cache, attention ("auto" | "generic"), shape_generic."""
        options = dict(options or {})
        from .attention.mla import mla_signatures

        mla = mla_signatures(graph)   # read before decomposition turns MLA into plain attention
        graph = decompose_variants(graph)
        target = self.target(options)
        self.hardware, self.capabilities = self.plugin.hardware, self.plugin.capabilities
        check_forced_tiles(graph, target["arch"], self.plugin.forced_tile)
        notes: list[str] = list(self.plugin.prepare_runtime(target))
        program = CudaProgram(graph, target, options, self.cache, notes, self.plugin)
        program.mla_signatures = mla   # builds (now, or at the first call for symbolic dims) choose the MLA kernel
        if all(isinstance(d, int) for v in graph.inputs for d in v.shape):
            program.runner_for(tuple(tuple(v.shape) for v in graph.inputs))
        return Executable(run=program, backend=self.name, artifacts={"graph": graph, "program": program},
                          notes=notes, accepts_torch=True)

    def export(self, executable: Executable, directory: str) -> list[str]:
        """The core's folder (plans, one library per build, constants, runtime) plus cuda/: per build the CUDA
        source and the fatbin nvcc made of it."""
        files = super().export(executable, directory)
        program: CudaProgram = executable.artifacts["program"]
        side = os.path.join(directory, "cuda")
        os.makedirs(side, exist_ok=True)
        for i, runner in enumerate(program.runners.values()):
            if not runner.library_path:
                continue
            src = os.path.dirname(runner.library_path)
            for name in SIDE_FILES:
                if os.path.exists(os.path.join(src, name)):
                    dst = os.path.join(side, name.replace("kernels", f"kernels_{i}", 1))
                    shutil.copyfile(os.path.join(src, name), dst)
                    files.append(dst)
        with open(os.path.join(side, "README.txt"), "w") as f:
            f.write(FOLDER_NOTE.format(arch=program.target["arch"]))
        files.append(os.path.join(side, "README.txt"))
        return files

    def load(self, directory: str) -> Executable:
        """An Executable over an export folder; the libraries are mapped only where a CUDA device exists."""
        with open(os.path.join(directory, "graph.json")) as f:
            graph = graph_from_json(f.read())
        with open(os.path.join(directory, PLANS_INDEX)) as f:
            index = json.load(f)
        target = index["target"]
        notes: list[str] = list(self.plugin.prepare_runtime(target))
        program = CudaProgram(graph, target, index.get("options", {}), self.cache, notes, self.plugin)
        for i, entry in enumerate(index["plans"]):
            with open(os.path.join(directory, entry["plan"])) as f:
                plan = Plan.from_json(f.read())
            lib_path = os.path.join(directory, entry["library"]) if entry["library"] else None
            lib = CudaLibrary(lib_path, _read_info(lib_path)) if lib_path else None
            shapes = GENERIC if entry["shapes"] == GENERIC else tuple(tuple(s) for s in entry["shapes"])
            program.runners[shapes] = program._bind(plan, lib, lib_path)
            notes.extend(n for n in plan.notes if n not in notes)
        return Executable(run=program, backend=self.name, artifacts={"graph": graph, "program": program},
                          notes=notes, accepts_torch=True)


__all__ = ["CudaBackend", "NoCudaDeviceError"]
