"""Runs the cuda target's flash-attention PrimFunc on this CPU: the same TIR generated as OpenCL (shared tiles
as __local memory, storage syncs as barriers) and launched on PoCL's CPU device with pyopencl.

No GPU is needed, and the launch honours work-group barriers, so the kernel's tiling, GQA packing, block
skipping, online softmax and split-KV combine are executed as written (fp32: PoCL has no cl_khr_fp16).
"""
from __future__ import annotations

import functools
import re

import numpy as np


@functools.lru_cache(maxsize=1)
def pocl_problem() -> str | None:
    """Why the flash TIR cannot run on PoCL here (None when it can): pyopencl / PoCL missing, or PoCL cannot build
    a kernel on this host (the PoCL 3.0 in pyopencl wheels uses LLVM 14, which names a Zen 5 CPU 'generic' and
    then rejects it: 'unknown target CPU')."""
    dev = pocl_device()
    if dev is None:
        return "pyopencl + PoCL (pip install pyopencl; apt-get install pocl-opencl-icd) not installed"
    import pyopencl as cl

    try:
        cl.Program(cl.Context(devices=[dev]), "__kernel void k(__global float *x) { x[0] = 1.0f; }").build()
    except Exception as e:  # noqa: BLE001 - the device's own error is the skip reason
        lines = [ln for ln in str(e).splitlines() if "error" in ln] or str(e).strip().splitlines()
        return f"PoCL cannot build kernels on this host: {lines[-1].strip()[:200]}"
    return None


def pocl_device():
    """PoCL's CPU device, or None when pyopencl / PoCL are missing."""
    try:
        import pyopencl as cl
    except ImportError:
        return None
    for platform in cl.get_platforms():
        for dev in platform.get_devices():
            if "pthread" in dev.name.lower() or "cpu" in cl.device_type.to_string(dev.type).lower():
                return dev
    return None


def run_flash(cfg, tile, splits: int, q, k, v, mask=None, v_from_k: bool = False) -> np.ndarray:
    """out (B, Hq, q_len, Dv) of flash_primfunc(cfg, tile, splits, v_from_k=v_from_k) on PoCL for these numpy
    inputs (with v_from_k, `v` is passed but the kernel reads V from k's first Dv columns)."""
    import pyopencl as cl
    import tvm

    from attncc.backends.cuda.attention.flash import flash_primfunc

    func = flash_primfunc(cfg, tile, splits, smem="shared", v_from_k=v_from_k)
    ex = tvm.compile(tvm.IRModule({"main": func}), target=tvm.target.Target({"kind": "opencl"}))
    src = ex.mod.imports[0].inspect_source()
    dev = pocl_device()
    ctx = cl.Context(devices=[dev])
    queue = cl.CommandQueue(ctx)
    prog = cl.Program(ctx, src).build()
    b, hq, ql, _ = q.shape
    hkv, kl, dv = k.shape[1], k.shape[2], v.shape[3]
    out = np.zeros((b, hq, ql, dv), np.float32)
    mf = cl.mem_flags
    arrays = {"Q": q, "K": k, "V": v, "O": out, "Opart": np.zeros((splits, b, hq, ql, dv), np.float32),
              "Lpart": np.zeros((splits, b, hq, ql), np.float32)}
    if mask is not None:
        arrays["M"] = mask
    bufs = {n: cl.Buffer(ctx, mf.READ_WRITE | mf.COPY_HOST_PTR, hostbuf=np.ascontiguousarray(a))
            for n, a in arrays.items()}
    scalars = {"batch": b, "q_len": ql, "kv_len": kl, "mb": mask.shape[0] if mask is not None else 1,
               "mh": mask.shape[1] if mask is not None else 1}
    rows = ql * cfg.group
    nqb = -(-rows // tile.q_block)
    ct = min(128, max(32, dv))
    launches = {"flash_kernel": ((nqb * tile.threads, b * hkv, splits), (tile.threads, 1, 1)),
                "flash_kernel_1": ((b * hq * ql * ct,), (ct,))}
    for name, params in re.findall(r"__kernel void (\w+)\(([^)]*)\)\s*{", src):
        args = []
        for p in params.split(","):
            ident = p.strip().split()[-1]
            if ident.endswith("_ptr"):
                args.append(bufs[ident[:-4]])
            else:
                args.append(np.int32(scalars[ident]))
        gsize, lsize = launches[name]
        getattr(prog, name)(queue, gsize, lsize, *args)
    cl.enqueue_copy(queue, out, bufs["O"])
    queue.finish()
    return out
