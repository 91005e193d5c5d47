"""Tensor-core matmul schedule (mma.sync m16n8k16 + ldmatrix). Not wired yet: returns False so the dlight rules
schedule every matmul."""
from __future__ import annotations


def try_tensor_core(sch, acc: str, arch: str) -> bool:
    """Schedule the `acc` matmul with tensor-core intrinsics when it fits; False when it does not."""
    return False
