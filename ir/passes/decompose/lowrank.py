"""Global context queries (low-rank factorized MHA): the batch-shared query broadcast over the batch."""
from __future__ import annotations

from . import register_decomposition
from ._build import Builder


@register_decomposition("global_query")
def global_query(b: Builder) -> list:
    """query (1, H, Nq, D) expanded to the key batch, then plain attention (key_rank is cost-model data only)."""
    q, k = b.named["query"], b.named["key"]
    if q.shape[0] != k.shape[0]:
        q = b.expand(q, (k.shape[0],) + tuple(q.shape[1:]), "q_batch")
    return [b.attention(b.plain_spec(), q, k, b.named["value"])]
