"""CHAI's online head clustering (Agarwal et al. 2024, facebookresearch/chai llama.patch): at the first call of a
request (the prompt, batch 1) each head's attention probabilities over the first `probe` tokens,
softmax(scale · q[:p] k[:p]ᵀ) unmasked as the authors compute them, are flattened; heads are clustered by
average-linkage agglomerative clustering on their cosine distances into `num_clusters` clusters. The assignment
then stays fixed for the request's decode steps (the authors' `self.grouping`)."""
from __future__ import annotations

import numpy as np
import torch


def probe_probabilities(q: torch.Tensor, k: torch.Tensor, scale: float, probe: int) -> np.ndarray:
    """(H, p·p) float64: per head, softmax over the first p keys of the first p queries' scores (batch 1)."""
    if q.shape[0] != 1:
        raise ValueError(f"CHAI online clustering runs on batch 1 (the authors assert it), got batch {q.shape[0]}")
    p = min(probe, q.shape[2], k.shape[2])
    scores = scale * (q[0, :, :p].double() @ k[0, :, :p].double().transpose(-1, -2))
    return torch.softmax(scores, dim=-1).reshape(q.shape[1], -1).detach().cpu().numpy()


def cosine_distances(x: np.ndarray) -> np.ndarray:
    """Pairwise 1 - cos(x_a, x_b) of the rows of x (scipy's cdist 'cosine')."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = 1.0 - unit @ unit.T
    np.fill_diagonal(d, 0.0)
    return np.maximum(d, 0.0)


def average_linkage(dist: np.ndarray, num_clusters: int) -> tuple[int, ...]:
    """Agglomerative clustering with average linkage on a precomputed distance matrix, merged down to
    `num_clusters`; ids numbered by first head (head 0 is in cluster 0), so CHAI's representative is each
    cluster's lowest head, as in the authors' `grouped_heads[0]`."""
    n = dist.shape[0]
    if not 1 <= num_clusters <= n:
        raise ValueError(f"num_clusters must be in [1, {n}] (number of heads), got {num_clusters}")
    groups = [[h] for h in range(n)]
    while len(groups) > num_clusters:
        # UPGMA: the distance of two clusters is the mean distance over their member pairs
        best, pair = np.inf, (0, 1)
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                d = dist[np.ix_(groups[a], groups[b])].mean()
                if d < best:
                    best, pair = d, (a, b)
        a, b = pair
        groups[a] = sorted(groups[a] + groups[b])
        del groups[b]
    labels = np.empty(n, dtype=int)
    for cid, g in enumerate(sorted(groups, key=min)):
        labels[g] = cid
    return tuple(int(c) for c in labels)


def cluster_heads(q: torch.Tensor, k: torch.Tensor, scale: float, num_clusters: int, probe: int = 5) -> tuple[int, ...]:
    """CHAI's cluster id per head from q, k (1, H, S, D) of the request's prompt."""
    return average_linkage(cosine_distances(probe_probabilities(q, k, scale, probe)), num_clusters)
