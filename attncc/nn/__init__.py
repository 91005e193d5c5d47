"""attncc.nn: reference torch modules, one per attention variant (docs/variants.md).

Each module builds its `AttentionSpec` at construction (wrong configurations raise ValueError / SpecError there)
and computes attention through `torch.ops.attncc.attention`, which torch.export keeps whole and the torch
frontend turns into one IR Attention op with the same spec.
"""
from .conformer import GroupedAttention, StridedAttention
from .convshare import ConvShareAttention
from .custom_op import attention, spec_from_json, spec_to_json
from .head_mixing import ClusteredHeadAttention, KnockingHeadsAttention, MixtureOfHeadsAttention
from .hilo import HiLoAttention
from .latent import MultiHeadLatentAttention, TemporalLatentAttention
from .linear import LinearAttention
from .local import HaloAttention, LocalGlobalAttention, MultiWindowAttention
from .lowrank import LowRankGlobalAttention
from .mha import CrossAttention, MultiHeadAttention, SlidingWindowAttention
from .sparse import BlockSparseAttention, ContextBroadcastAttention, SparsifinerAttention

__all__ = [
    "attention", "spec_from_json", "spec_to_json", "MultiHeadAttention", "CrossAttention", "SlidingWindowAttention",
    "MultiHeadLatentAttention", "TemporalLatentAttention", "LowRankGlobalAttention", "GroupedAttention",
    "StridedAttention", "LocalGlobalAttention", "MultiWindowAttention", "HaloAttention", "HiLoAttention", "MixtureOfHeadsAttention",
    "KnockingHeadsAttention", "ClusteredHeadAttention", "SparsifinerAttention", "BlockSparseAttention",
    "ContextBroadcastAttention", "LinearAttention", "ConvShareAttention",
]
