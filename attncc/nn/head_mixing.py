"""Head mixing modules: mixture-of-heads routing, knocking-heads, clustered heads (CHAI)."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..ir.ops import AttentionSpec, MaskSpec
from ..ir.ops.attention_features import CHAI, KnockingHeads, MoH
from ._base import check
from ._projected import ProjectedAttention


class MixtureOfHeadsAttention(ProjectedAttention):
    """Mixture-of-head attention ("MoH: Multi-Head Attention as Mixture-of-Head Attention", Jin et al. 2024;
    "Mixture of Attention Heads: Selecting Attention Heads Per Token", Zhang et al. 2022): a router scores the
    heads per token, each token uses its top_k routed heads (softmax-weighted) plus `shared_heads` always-on
    heads, and the output projection takes the weighted sum of head outputs.

    routers="moh" is the authors' MoHAttention (SkyworkAI/MoH): `router` rows [0, shared) are the shared-head
    router (wg_1), the rest the routed router (wg); `balance` (wg_0) is the shared-vs-routed balancing router;
    gates carry the authors' scales (x top_k, x shared_heads, x 2). routers="fixed" weighs shared heads 1.
    `load_moh(state_dict)` copies an authors' MoHAttention's weights."""

    def __init__(self, embed_dim: int, num_heads: int, top_k: int, shared_heads: int = 0, causal: bool = False,
                 routers: str = "fixed"):
        super().__init__(embed_dim, num_heads)
        check(0 <= shared_heads < num_heads and 1 <= top_k <= num_heads - shared_heads,
              f"need 0 <= shared_heads < num_heads and 1 <= top_k <= num_heads - shared_heads; "
              f"got top_k={top_k}, shared_heads={shared_heads}, num_heads={num_heads}")
        self.router = nn.Linear(embed_dim, num_heads, bias=False)
        feat = MoH(top_k, shared_heads, routers)
        self.balance = nn.Linear(embed_dim, 2, bias=False) if feat.balanced else None
        self.spec = AttentionSpec(num_heads, num_heads, self.head_dim, scale=1 / math.sqrt(self.head_dim),
                                  mask=MaskSpec(causal=causal), head_mixing=feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        extra = {"balance_logits": self.balance(x)} if self.balance is not None else {}
        return self.attend(*self.heads(x), head_logits=self.router(x), **extra)

    @torch.no_grad()
    def load_moh(self, sd) -> "MixtureOfHeadsAttention":
        """Copy the weights of the authors' MoHAttention (its state_dict: qkv, proj, wg, wg_0, wg_1); returns self."""
        sd = {k: torch.as_tensor(v) for k, v in sd.items()}
        D = self.num_heads * self.head_dim
        for i, lin in enumerate((self.q_proj, self.k_proj, self.v_proj)):   # qkv rows are [q; k; v]
            lin.weight.copy_(sd["qkv.weight"][i * D:(i + 1) * D])
            lin.bias.copy_(sd["qkv.bias"][i * D:(i + 1) * D] if "qkv.bias" in sd else torch.zeros(D))
        self.o_proj.weight.copy_(sd["proj.weight"])
        self.o_proj.bias.copy_(sd["proj.bias"])
        shared = self.spec.head_mixing.shared_heads
        rows = ([sd["wg_1.weight"]] if shared else []) + [sd["wg.weight"]]
        self.router.weight.copy_(torch.cat(rows))
        if self.balance is not None:
            self.balance.weight.copy_(sd["wg_0.weight"])
        return self


class KnockingHeadsAttention(ProjectedAttention):
    """Knocking-heads attention ("Knocking-Heads Attention", Zhou et al. 2025): a shared cross-head projection,
    diagonal (identity) at initialization, mixes the heads of each of `targets` (q, k, v) before SDPA.
    Works on MHA and GQA layouts."""

    def __init__(self, embed_dim: int, num_heads: int, num_kv_heads: int | None = None, targets=("k", "v"), causal: bool = False):
        super().__init__(embed_dim, num_heads, num_kv_heads)
        self.targets = tuple(targets)
        feat = KnockingHeads(self.targets)
        self.knock = nn.ParameterDict({t: nn.Parameter(torch.eye(num_heads if t == "q" else self.num_kv_heads))
                                       for t in self.targets})
        self.spec = AttentionSpec(num_heads, self.num_kv_heads, self.head_dim, scale=1 / math.sqrt(self.head_dim),
                                  mask=MaskSpec(causal=causal), head_mixing=feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attend(*self.heads(x), **{f"knock_{t}": self.knock[t] for t in self.targets})


class ClusteredHeadAttention(ProjectedAttention):
    """Clustered head attention ("CHAI: Clustered Head Attention for Efficient LLM Inference", Agarwal et al. 2024):
    heads with correlated attention share one score matrix, computed by the first head of each cluster
    (`clusters[h]` = cluster id of head h); each head keeps its own values.

    Static clusters (`clusters`, found offline) or CHAI online as the authors run it (`num_clusters` = K,
    `clusters` None): the first call of a request (the prompt, batch 1, at least `probe` tokens) clusters the
    heads from their probabilities over the first `probe` tokens (attncc.nn.chai_online) and keeps that
    assignment in `self.spec` for the following calls; `new_request()` forgets it. Export/compile after the
    prompt call: the graph carries the assignment and online_probe (priced by the cost model)."""

    def __init__(self, embed_dim: int, num_heads: int, clusters=None, causal: bool = True,
                 num_clusters: int | None = None, probe: int = 5):
        super().__init__(embed_dim, num_heads)
        check((clusters is None) != (num_clusters is None), "give exactly one of clusters (static) or num_clusters (online)")
        self.causal, self.probe = causal, probe
        self.num_clusters = num_clusters
        if clusters is not None:
            clusters = tuple(int(c) for c in clusters)
            check(len(clusters) == num_heads, f"clusters has {len(clusters)} ids for {num_heads} heads")
            self._set_clusters(clusters, 0)
        else:
            check(1 <= num_clusters <= num_heads, f"num_clusters must be in [1, {num_heads}], got {num_clusters}")
            check(isinstance(probe, int) and probe >= 1, f"probe must be an int >= 1, got {probe!r}")
            self.spec = None

    def _set_clusters(self, clusters: tuple, online_probe: int) -> None:
        self.clusters = clusters
        self.spec = AttentionSpec(self.num_heads, self.num_heads, self.head_dim, scale=1 / math.sqrt(self.head_dim),
                                  mask=MaskSpec(causal=self.causal), head_mixing=CHAI(clusters, online_probe))

    def new_request(self) -> None:
        """Online mode: the next call clusters the heads again (the authors re-cluster at start_pos == 0)."""
        check(self.num_clusters is not None, "new_request() is for online clustering (num_clusters=...)")
        self.spec = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.heads(x)
        if self.spec is None:   # online: the prompt's first tokens decide the clusters (host step, once per request)
            from .chai_online import cluster_heads
            check(x.shape[1] >= self.probe, f"CHAI online needs a prompt of >= probe={self.probe} tokens, got {x.shape[1]}")
            self._set_clusters(cluster_heads(q, k, 1 / math.sqrt(self.head_dim), self.num_clusters, self.probe),
                               self.probe)
        return self.attend(q, k, v)
