"""Low-rank factorized multi-head attention querying a global context vector (Mehta et al.), with the head
size decoupled from the number of heads (Bhojanapalli et al., Low-Rank Bottleneck)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...errors import require
from ..attention_spec import Feature, register_feature
from ._common import check, check_plain_context, out, positive_int, qkv


@register_feature
@dataclass(frozen=True)
class GlobalQuery(Feature):
    """Attention of `num_queries` learned global context vectors per head over the tokens.

    query (1, H, num_queries, D) is a parameter shared by the whole batch (not a token projection);
    key/value (B, Hkv, S, D/Dv). `key_rank` records the rank of the factorized key projection
    W_k = U V (U: E x r) that produced the keys (0 = full rank); it is data for the cost model and
    does not change the op's math. head_dim is free of embed_dim / num_heads.
    Output (B, H, num_queries, Dv).
    """

    kind: ClassVar[str] = "global_query"
    variant_label: ClassVar[str] = "lowrank"
    num_queries: int = 1
    key_rank: int = 0

    def __post_init__(self):
        positive_int("global_query", "num_queries", self.num_queries)
        check(isinstance(self.key_rank, int) and self.key_rank >= 0, f"global_query.key_rank must be an int >= 0, got {self.key_rank!r}")

    def validate(self, spec):
        check_plain_context(self, spec)
        check(spec.mask.is_empty, "global_query: global context queries attend to every token; the mask must be empty")

    def infer(self, spec, t, node):
        q, k, v, B, Sq, Skv = qkv(spec, t, node, q_batch=1)
        require(Sq == self.num_queries, node, f"global_query: query has {Sq} context vectors, spec says {self.num_queries}")
        return out(q, B, spec.num_heads, self.num_queries, spec.v_head_dim)
