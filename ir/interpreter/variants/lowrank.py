"""Global context queries (low-rank factorized MHA)."""
from __future__ import annotations

import numpy as np

from ..attention_ref import register_reference
from ._common import as_f64, finish, softmax_attention


@register_reference("global_query")
def global_query(spec, named):
    f = as_f64(named)
    k = f["key"]
    q = np.broadcast_to(f["query"], (k.shape[0],) + f["query"].shape[1:])   # one context vector set for the batch
    return finish(softmax_attention(spec, q, k, f["value"]), named)
