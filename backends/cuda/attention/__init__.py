"""Flash attention kernels for the cuda target (TIR PrimFuncs)."""
from __future__ import annotations


def attention_primfunc(cfg, target: dict):
    """(PrimFunc over (q, k, v[, mask], out), metadata) for `cfg` on `target`."""
    raise NotImplementedError("cuda flash attention kernels are not written yet")
