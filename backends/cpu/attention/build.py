"""build_attention_kernel: config -> compiled, callable kernel (cached)."""
from __future__ import annotations

import dataclasses
import shutil
import threading
from typing import Any

import numpy as np

from ...core.attention_config import AttentionKernelConfig
from .target import default_target, num_threads, target_key

_CACHE: dict[tuple, "AttentionKernel"] = {}
_LOCK = threading.Lock()

PASS_CONFIG = {"tirx.disable_storage_rewrite": True}

_TORCH_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


@dataclasses.dataclass
class KernelStats:
    """Process-wide counts: kernels compiled from TVMScript vs loaded from a stored library."""
    compiled: int = 0
    loaded: int = 0


STATS = KernelStats()


def select_kind(cfg: AttentionKernelConfig) -> str:
    """'decode' (split-KV, heads of a kv group together) for short queries, else 'prefill'."""
    from .decode import DECODE_MAX_Q
    return "decode" if cfg.q_len <= DECODE_MAX_Q and "q_len" not in cfg.dynamic else "prefill"


def make_primfunc(cfg: AttentionKernelConfig, kind: str | None = None, threads: int | None = None):
    kind = kind or select_kind(cfg)
    if kind == "decode":
        from .decode import make_decode
        return make_decode(cfg, threads=threads or num_threads()) + ("decode",)
    if kind == "prefill":
        from .prefill import make_prefill
        return make_prefill(cfg) + ("prefill",)
    raise ValueError(f"kind must be 'prefill' or 'decode', got {kind!r}")


def _is_torch(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


class AttentionKernel:
    """A compiled attention kernel for one AttentionKernelConfig.

    ``kernel(q, k, v, mask=None, out=None)`` takes numpy arrays or torch tensors
    (zero-copy through DLPack when contiguous) and returns the same kind.
    Rows whose keys are all masked produce 0.
    """

    def __init__(self, cfg, target, executable, kind, schedule, primfunc, module=None, library_path=None):
        self.cfg = cfg
        self.target = target
        self.executable = executable
        self.kind = kind
        self.schedule = schedule
        self.primfunc = primfunc
        self.mod = executable.mod if executable is not None else module
        self.library_path = library_path  # set when loaded from a stored library
        self._fn = self.mod["attention"]

    @classmethod
    def from_module(cls, cfg, target, module, kind: str, schedule, library_path: str | None = None
                    ) -> "AttentionKernel":
        """Wrap an already compiled module (e.g. ``tvm.runtime.load_module(path)``) holding "attention"."""
        return cls(cfg, target, None, kind, schedule, None, module=module, library_path=library_path)

    def metadata(self) -> dict:
        """What `load_attention_kernel` needs besides cfg and target: the kernel kind and its schedule."""
        return {"kind": self.kind, "schedule": dataclasses.asdict(self.schedule)}

    # ------------------------------------------------------------------ misc
    def __repr__(self):
        return f"AttentionKernel({self.kind}, {self.schedule}, target={self.target})"

    def export_library(self, path: str) -> None:
        """Write the kernel's shared library to `path` (loadable by `load_attention_kernel`)."""
        if self.executable is not None:
            self.executable.export_library(path)
        elif self.library_path is not None and self.library_path != path:
            shutil.copyfile(self.library_path, path)  # a loaded library cannot be re-exported by TVM
        elif self.library_path is None:
            raise ValueError("this AttentionKernel wraps a module with no executable or library file to export")

    def time(self, *args, number: int = 5, repeat: int = 3) -> float:
        """Mean seconds per call, measured by TVM's time_evaluator on prepared tvm tensors."""
        import tvm
        ev = self.mod.time_evaluator("attention", tvm.cpu(), number=number, repeat=repeat)
        return ev(*args).mean

    def prepare(self, q, k, v, mask=None, out=None):
        """Check and convert arguments; returns (tvm_args, out_native)."""
        cfg = self.cfg
        torch_mode = _is_torch(q)
        B, HQ, HKV, QL, KL, D, DV = (cfg.batch, cfg.q_heads, cfg.kv_heads, cfg.q_len,
                                     cfg.kv_len, cfg.head_dim, cfg.v_head_dim)
        shapes = {"q": (B, HQ, QL, D), "k": (B, HKV, KL, D), "v": (B, HKV, KL, DV)}
        arrs = {"q": q, "k": k, "v": v}
        if cfg.dynamic:  # sizes come from the arguments: check the static dims and that q, k, v agree
            B, QL, KL = q.shape[0], q.shape[2], k.shape[2]
            shapes = {"q": (B, HQ, QL, D), "k": (B, HKV, KL, D), "v": (B, HKV, KL, DV)}
        for name, x in arrs.items():
            if tuple(x.shape) != shapes[name]:
                raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {shapes[name]}")
            if _dtype_name(x) != cfg.dtype:
                raise ValueError(f"{name} has dtype {_dtype_name(x)}, expected {cfg.dtype}")
            arrs[name] = _aligned(_contig(x))
        args = [_to_tvm(arrs["q"]), _to_tvm(arrs["k"]), _to_tvm(arrs["v"])]
        if cfg.mask_input == "none":
            if mask is not None:
                raise ValueError("mask given but cfg.mask_input is 'none'")
        else:
            if mask is None:
                raise ValueError(f"cfg.mask_input is {cfg.mask_input!r} but no mask was given")
            table = cfg.mask_input == "table"   # the (1, Hq, 1, entries) bias table, as given
            args.append(_to_tvm(_aligned(_contig(mask) if table else self._prep_mask(mask, B, QL, KL))))
        oshape = (B, HQ, QL, DV)
        if out is None:
            if torch_mode:
                import torch
                out = torch.empty(oshape, dtype=getattr(torch, cfg.dtype))
            else:
                out = _aligned_empty_np(oshape, _np_dtype(cfg.dtype))
        else:
            if tuple(out.shape) != oshape or _dtype_name(out) != cfg.dtype:
                raise ValueError(f"out must have shape {oshape} and dtype {cfg.dtype}")
            if not _is_contig(out):
                raise ValueError("out must be contiguous")
        if _data_ptr(out) % ALIGN:      # kernels assume 64-byte aligned tensors
            tmp = _aligned(out, force=True)
            args.append(_to_tvm(tmp))
            return args, (out, tmp)
        args.append(_to_tvm(out))
        return args, out

    def _prep_mask(self, mask, B: int, QL: int, KL: int):
        cfg = self.cfg
        HQ = cfg.q_heads
        torch_mode = _is_torch(mask)
        shape = tuple(mask.shape)
        if len(shape) > 4:
            raise ValueError(f"mask has rank {len(shape)} > 4")
        shape4 = (1,) * (4 - len(shape)) + shape
        mask = mask.reshape(shape4)
        for got, full, nm in zip(shape4, (B, HQ, QL, KL), ("batch", "heads", "q_len", "kv_len")):
            if got not in (1, full):
                raise ValueError(f"mask shape {shape} is not broadcastable to "
                                 f"{(B, HQ, QL, KL)} (mismatch in {nm})")
        if shape4[2] != QL or shape4[3] != KL:   # broadcast over q/k: materialise
            tgt = (shape4[0], shape4[1], QL, KL)
            mask = mask.expand(tgt) if torch_mode else np.broadcast_to(mask, tgt)
        if cfg.mask_input == "bool":
            if torch_mode:
                import torch
                if mask.dtype != torch.bool:
                    mask = mask != 0
                mask = mask.contiguous().view(torch.uint8)
            else:
                mask = np.ascontiguousarray(np.asarray(mask) != 0 if mask.dtype != np.bool_ else mask)
                mask = mask.view(np.uint8)
        else:
            if torch_mode:
                import torch
                mask = mask.to(torch.float32).contiguous()
            else:
                mask = np.ascontiguousarray(mask, dtype=np.float32)
        return mask

    def __call__(self, q, k, v, mask=None, out=None):
        args, out = self.prepare(q, k, v, mask, out)
        self._fn(*args)
        if isinstance(out, tuple):          # unaligned user output: copy back
            out, tmp = out
            out[...] = tmp
        return out


# ------------------------------------------------------------------ helpers
def _np_dtype(name: str):
    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def _dtype_name(x) -> str:
    if _is_torch(x):
        return str(x.dtype).replace("torch.", "")
    return str(np.dtype(x.dtype))


def _is_contig(x) -> bool:
    if _is_torch(x):
        return x.is_contiguous()
    return x.flags["C_CONTIGUOUS"]


def _contig(x):
    if _is_torch(x):
        return x.contiguous()
    return np.ascontiguousarray(x)


ALIGN = 64


def _data_ptr(x) -> int:
    return x.data_ptr() if _is_torch(x) else x.ctypes.data


def _aligned_empty_np(shape, dtype):
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(n + ALIGN, dtype=np.uint8)
    off = (-raw.ctypes.data) % ALIGN
    return raw[off:off + n].view(dtype).reshape(shape)


def _aligned(x, force=False):
    """x if its data is 64-byte aligned, else an aligned contiguous copy."""
    if not force and _data_ptr(x) % ALIGN == 0:
        return x
    if _is_torch(x):
        return x.clone(memory_format=__import__("torch").contiguous_format)
    y = _aligned_empty_np(x.shape, x.dtype)
    y[...] = x
    return y


def _to_tvm(x):
    import tvm
    if _is_torch(x):
        return tvm.runtime.from_dlpack(x.detach())
    if str(x.dtype) == "bfloat16":  # numpy cannot export ml_dtypes through DLPack
        try:
            import torch
            return tvm.runtime.from_dlpack(torch.from_numpy(x.view(np.uint16)).view(torch.bfloat16))
        except ImportError:  # pragma: no cover
            raise ValueError("bfloat16 numpy inputs need torch for zero-copy transfer")
    return tvm.runtime.from_dlpack(x)


# --------------------------------------------------------------------- build
def build_attention_kernel(cfg: AttentionKernelConfig, target: dict | None = None,
                           kind: str | None = None) -> AttentionKernel:
    """Compile (or fetch from the cache) the kernel for ``cfg`` on ``target``
    (default: this host's CPU, e.g. {"kind": "llvm", "mcpu": "znver4", "num-cores": 2})."""
    if not isinstance(cfg, AttentionKernelConfig):
        raise ValueError(f"cfg must be an AttentionKernelConfig, got {type(cfg).__name__}")
    cfg.validate()
    key = (cfg, target_key(target), kind)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    import tvm
    tgt = default_target() if target is None else target
    threads = tgt.get("num-cores", num_threads()) if isinstance(tgt, dict) else num_threads()
    func, sched, kind_ = make_primfunc(cfg, kind, threads)
    with tvm.transform.PassContext(opt_level=3, config=PASS_CONFIG):
        ex = tvm.compile(tvm.IRModule({"attention": func}), target=tvm.target.Target(tgt))
    kern = AttentionKernel(cfg, tgt, ex, kind_, sched, func)
    STATS.compiled += 1
    with _LOCK:
        _CACHE[key] = kern
    return kern


def load_attention_kernel(path: str, cfg: AttentionKernelConfig, target: dict, metadata: dict) -> AttentionKernel:
    """The kernel stored at `path` by `AttentionKernel.export_library`, with the `metadata()` recorded beside it.

    Raises (FileNotFoundError, ValueError or TVM's error) when the file or metadata is missing or unusable;
    callers fall back to `build_attention_kernel`.
    """
    import tvm
    from .decode import DecodeSchedule
    from .prefill import PrefillSchedule

    schedules = {"prefill": PrefillSchedule, "decode": DecodeSchedule}
    kind = metadata.get("kind")
    if kind not in schedules:
        raise ValueError(f"stored attention kernel {path}: kind must be 'prefill' or 'decode', got {kind!r}")
    schedule = schedules[kind](**metadata["schedule"])
    module = tvm.runtime.load_module(path)
    kern = AttentionKernel.from_module(cfg, target, module, kind, schedule, library_path=path)
    STATS.loaded += 1
    return kern


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
