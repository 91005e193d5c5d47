"""The `mobile-gpu` target plugin: OpenCL kernels for Adreno/Mali-class GPUs, sized from the device spec."""
from __future__ import annotations

import json
import os

from ...core.backend import PLANS_INDEX
from ...core.plugin import TargetPlugin
from . import schedules
from .matmul import GpuMatmul
from .record import NAME
from .spec import opencl_limits


class MobileGpuPlugin(TargetPlugin):
    """OpenCL (buffers) with an LLVM host; kernels sized by `opencl_limits()` (cost_models/specs/mobile-gpu.json).
    Options, TVM target, capabilities and device: record.py. Builds are OpenCL libraries (compile.py) run by
    pyopencl (executor.py), one per input shape; exports carry OpenCL C and a launch table."""

    name = NAME
    attention_mask_full = True   # the flash kernel reads the mask at (b, h): the core expands broadcast masks
    per_shape_reason = "mobile-gpu builds once per input shape (kernel launch sizes are fixed at compile time)"

    def __init__(self):
        self.limits = opencl_limits()
        self.matmul = GpuMatmul()

    def schedule(self, kind: str):
        return schedules.SCHEDULES[kind]

    def attention_primfunc(self, cfg, target: dict):
        """(PrimFunc, metadata) of the OpenCL flash-attention kernel for `cfg` (gpu/attention.py). Shapes it
        does not take (dynamic dims, bf16) raise ValueError: the core then uses its generic TE attention and
        says so in the plan notes; a tile over the device limits raises TileDoesNotFit (a compile error)."""
        from .attention import attention_primfunc

        return attention_primfunc(cfg, self.limits)

    def prepare_runtime(self, target: dict) -> list[str]:
        from .spec import opencl_problem

        problem = opencl_problem()
        if problem is not None:
            return [f"mobile-gpu: no working OpenCL device in this process ({problem}): the OpenCL sources compile "
                    "and export, but running them here raises (pip install pyopencl; apt-get install pocl-opencl-icd "
                    "gives a CPU device)"]
        return []

    def build_library(self, plan, target: dict):
        """OpenCL C + the launch table of every kernel (compile.py)."""
        from .compile import compile_opencl

        return compile_opencl(plan, target)

    def load_library(self, path: str):
        from .compile import OpenClLibrary

        return OpenClLibrary.load(path)   # its export_library writes this JSON form (the cache's library file)

    def make_runner(self, plan, lib, constants: dict, references: dict, library_path: str | None = None):
        runner = LazyOpenClRunner(plan, lib, constants, references)
        runner.library_path = library_path
        return runner

    def export_extras(self, program, directory: str, files: list[str]) -> list[str]:
        """Each build's library as kernels_<i>.json (launch table + source) and its OpenCL C as kernels_<i>.cl;
        the TVM-runtime runner files go (run.py uses pyopencl)."""
        from .compile import OpenClLibrary

        with open(os.path.join(directory, PLANS_INDEX)) as f:
            index = json.load(f)
        for entry in index["plans"]:
            if not entry.get("library"):
                continue
            old = os.path.join(directory, entry["library"])
            new = old[:-3] + ".json" if old.endswith(".so") else old
            if new != old:
                os.replace(old, new)
                files[files.index(old)] = new
                entry["library"] = os.path.basename(new)
            cl_path = new[:-5] + ".cl"
            with open(cl_path, "w") as f:
                f.write(OpenClLibrary.load(new).source)
            files.append(cl_path)
        with open(os.path.join(directory, PLANS_INDEX), "w") as f:
            json.dump(index, f, indent=1)
        for name in ("attncc_runtime.py", "attncc_checks.py", "run.py"):   # TVM-runtime files: not for OpenCL builds
            p = os.path.join(directory, name)
            if p in files:
                os.remove(p)
                files.remove(p)
        return files


class LazyOpenClRunner:
    """Holds a build; opens the OpenCL device only at the first call (compiling and exporting need none)."""

    def __init__(self, plan, lib, consts, refs):
        self.plan, self.lib, self._consts, self._refs = plan, lib, consts, refs
        self._persistent = consts          # what Program.constants_of reads
        self.library_path = None
        self._runner = None

    def __call__(self, inputs, as_torch: bool = False):
        if self._runner is None:
            from .executor import OpenClRunner

            self._runner = OpenClRunner(self.plan, self.lib, self._consts, self._refs)
        return self._runner(inputs, as_torch)
