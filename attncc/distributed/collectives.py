"""Each collective IR op as torch.distributed calls (any axis: the op's axis is moved to the front, where
torch's collectives split and concatenate)."""
from __future__ import annotations

import torch

_REDUCE = {"sum": "SUM", "max": "MAX", "min": "MIN"}


def _front(t: torch.Tensor, axis: int) -> torch.Tensor:
    return t.movedim(axis % t.dim(), 0).contiguous()


def run_collective(op, x: torch.Tensor, dist, group, peer: int | None = None) -> torch.Tensor:
    """The output of collective `op` on this rank's input `x` (Recv: `x` is None), over process group `group`
    (None: a group of one rank) or with the global rank `peer` (Send/Recv)."""
    name = op.op_name
    if name == "Send":
        shape = torch.tensor(list(x.shape), dtype=torch.int64)
        dist.send(torch.tensor([x.dim()], dtype=torch.int64), dst=peer)
        dist.send(shape, dst=peer)
        dist.send(x.contiguous(), dst=peer)
        return x
    if name == "Recv":
        ndim = torch.zeros(1, dtype=torch.int64)
        dist.recv(ndim, src=peer)
        shape = torch.zeros(int(ndim.item()), dtype=torch.int64)
        dist.recv(shape, src=peer)
        out = torch.empty(tuple(int(s) for s in shape.tolist()), dtype=_torch_dtype(op.dtype))
        dist.recv(out, src=peer)
        return out
    if group is None and op.ranks == 1:
        return x
    n = op.ranks
    if name == "AllReduce":
        out = x.clone().contiguous()
        dist.all_reduce(out, op=getattr(dist.ReduceOp, _REDUCE[op.reduce]), group=group)
        return out
    if name == "AllGather":
        parts = [torch.empty_like(x.contiguous()) for _ in range(n)]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=op.axis % x.dim())
    if name == "ReduceScatter":
        front = _front(x, op.axis)
        out = torch.empty((front.shape[0] // n, *front.shape[1:]), dtype=x.dtype)
        dist.reduce_scatter_tensor(out, front, op=getattr(dist.ReduceOp, _REDUCE[op.reduce]), group=group)
        return out.movedim(0, op.axis % x.dim()).contiguous()
    if name == "AllToAll":
        front = _front(x, op.split_axis)
        out = torch.empty_like(front)
        dist.all_to_all_single(out, front, group=group)
        blocks = [b.movedim(0, op.split_axis % x.dim()) for b in out.chunk(n, dim=0)]
        return torch.cat(blocks, dim=op.concat_axis % x.dim()).contiguous()
    raise NotImplementedError(f"no torch.distributed rule for collective {name}")


_DTYPES = ["float32", "float16", "bfloat16", "float64", "int64", "int32", "int8", "uint8", "bool"]


def _torch_dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


def broadcast_from(x: torch.Tensor | None, src: int, dist) -> torch.Tensor:
    """Every rank gets rank `src`'s tensor `x` (None on the other ranks): rank, shape and dtype first, then data."""
    nd = torch.tensor([x.dim() if x is not None else 0], dtype=torch.int64)
    dist.broadcast(nd, src=src)
    shape = torch.tensor(list(x.shape) if x is not None else [0] * int(nd.item()), dtype=torch.int64)
    dist.broadcast(shape, src=src)
    kind = torch.tensor([_DTYPES.index(str(x.dtype).replace("torch.", "")) if x is not None else 0],
                        dtype=torch.int64)
    dist.broadcast(kind, src=src)
    x = x.contiguous() if x is not None else torch.empty(tuple(shape.tolist()),
                                                         dtype=_torch_dtype(_DTYPES[int(kind.item())]))
    dist.broadcast(x, src=src)
    return x


def gather_outputs(sources: list, shards: dict, local: list, rank: int, dist) -> list[torch.Tensor]:
    """Every rank gets every full output of a sharded program: output i is rank r's output j for
    (r, j) = sources[i], or, for i in `shards` ({i: (axis, [(rank, j, start, stop), ...])}), the blocks the
    ranks hold, concatenated along axis (a block replicated on several ranks is taken once)."""
    if dist.get_world_size() == 1:
        return [local[j] for _, j in sources]
    outs = []
    for i, (src, j) in enumerate(sources):
        if i in shards:
            axis, blocks = shards[i]
            parts, covered = [], 0
            for r, jj, start, stop in sorted(blocks, key=lambda b: b[2]):
                if start == covered:
                    parts.append(broadcast_from(local[jj] if r == rank else None, r, dist))
                    covered = stop
            outs.append(torch.cat(parts, dim=axis))
        else:
            outs.append(broadcast_from(local[j] if src == rank else None, src, dist))
    return outs
