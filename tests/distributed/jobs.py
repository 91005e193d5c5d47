"""Functions run on every rank by attncc.distributed.launch in tests (module level: spawned processes import them)."""
from __future__ import annotations

import numpy as np
import torch

import attncc


def _check(model, inputs, plan, builds: list | None = None, **kw) -> float:
    """Compile this rank's shard, run it on the full inputs, return the max abs difference to eager torch
    (`builds`: appended with every rank's fresh kernel builds)."""
    import torch.distributed as dist

    cm = attncc.compile(model, inputs, target="cpu", parallel=plan, **kw)
    got = cm(*inputs)
    if builds is not None:
        every = [None] * dist.get_world_size()
        dist.all_gather_object(every, cm.builds)
        builds.extend(every)
    with torch.no_grad():
        want = model(*inputs)
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, (tuple, list)) else (want,)
    return max(float((g - w).abs().max()) for g, w in zip(got, want))


def llama_tp_and_decoder_pp() -> dict:
    """TP=2 Llama-style GQA block and PP=2 two-layer decoder with a KV cache, in one 2-rank job."""
    from examples.models import LlamaStyleBlock, TinyLlama

    torch.manual_seed(0)
    block = LlamaStyleBlock(hidden=32, heads=4, kv_heads=2, ffn=48, max_seq=16).eval()
    decoder = TinyLlama(vocab=64, hidden=32, layers=2, heads=4, kv_heads=2, ffn=48).eval()
    dec_inputs = (torch.randint(0, 64, (1, 3)), torch.randn(2, 1, 2, 4, 8), torch.randn(2, 1, 2, 4, 8))
    builds: list[int] = []
    return {"tp2_block": _check(block, (torch.randn(2, 8, 32),), {"tp": 2}, builds),
            "pp2_decoder": _check(decoder, dec_inputs, {"pp": 2}), "tp2_builds": builds}


def moe_ep_and_mla_decode_tp() -> dict:
    """EP=2 Mixtral-style MoE block (top-2 router, grouped expert matmuls) and TP=2 DeepSeek-V3-style MLA
    decode step (one token; the cpu pipeline's mla-absorb picks the absorbed form), in one 2-rank job."""
    from tests.passes.test_shard import deepseek_v3, moe_block

    moe, moe_inputs, _ = moe_block()
    mla, mla_inputs, _ = deepseek_v3()
    ids = (mla_inputs[0][:, :1].contiguous(),)
    cm = attncc.compile(mla, ids, target="cpu", parallel={"tp": 2})
    absorbed = [n.spec.kv_source.absorbed for c in cm.compiled if c is not None
                for n in c.graph.attention_ops() if n.spec.kv_source is not None]
    heads = [n.spec.num_heads for c in cm.compiled if c is not None for n in c.graph.attention_ops()]
    got = cm(*ids)
    with torch.no_grad():
        want = mla(*ids)
    got, want = (got if isinstance(got, tuple) else (got,)), (want if isinstance(want, (tuple, list)) else (want,))
    mla_err = max(float((g - w).abs().max()) for g, w in zip(got, want))
    return {"ep2_moe": _check(moe, moe_inputs, {"ep": 2}), "tp2_mla_decode": mla_err, "mla_heads": heads,
            "mla_absorbed": absorbed}


def mixtral_ep() -> float:
    from tests.passes.test_shard import mixtral

    model, inputs, _ = mixtral()
    return _check(model, inputs, {"ep": 2})


def deepseek_mla_tp() -> float:
    from tests.passes.test_shard import deepseek_v3

    model, inputs, _ = deepseek_v3()
    return _check(model, inputs, {"tp": 2})


def llama_tp4() -> float:
    from examples.models import LlamaStyleBlock

    torch.manual_seed(0)
    block = LlamaStyleBlock(hidden=32, heads=4, kv_heads=2, ffn=48, max_seq=16).eval()
    return _check(block, (torch.randn(2, 8, 32),), {"tp": 4})


def wrong_world_size() -> None:
    from examples.models import LlamaStyleBlock

    block = LlamaStyleBlock(hidden=32, heads=4, kv_heads=2, ffn=48, max_seq=16).eval()
    attncc.compile(block, (torch.randn(1, 4, 32),), target="cpu", parallel={"tp": 4})


def rank_one_raises() -> None:
    """Rank 1 raises before a collective; rank 0 waits in an all-reduce that can never complete."""
    import torch.distributed as dist

    if dist.get_rank() == 1:
        raise ValueError("rank 1 broke on purpose")
    dist.all_reduce(torch.ones(4))


def rank_one_dies() -> None:
    import os

    import torch.distributed as dist

    if dist.get_rank() == 1:
        os._exit(3)
    dist.all_reduce(torch.ones(4))


def square_rank() -> int:
    import torch.distributed as dist

    t = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(t)
    return int(t.item())


def export_tp2_block(directory: str) -> float:
    """Compile the TP=2 block, export the rank folders and the inputs/expected outputs beside them."""
    import os

    from examples.models import LlamaStyleBlock

    torch.manual_seed(0)
    block = LlamaStyleBlock(hidden=32, heads=4, kv_heads=2, ffn=48, max_seq=16).eval()
    x = torch.randn(2, 8, 32)
    cm = attncc.compile(block, (x,), target="cpu", parallel={"tp": 2})
    y = cm(x)
    cm.export(directory)
    import torch.distributed as dist

    if dist.get_rank() == 0:
        with torch.no_grad():
            want = block(x)
        np.savez(os.path.join(os.path.dirname(directory), "inputs.npz"), **{cm.program.input_names[0]: x.numpy()})
        np.savez(os.path.join(os.path.dirname(directory), "expected.npz"), want.numpy())
    return float((y - want).abs().max()) if dist.get_rank() == 0 else 0.0


def cuda_tp2_export(directory: str) -> dict:
    """A TP=2 cuda build compiles and exports on a machine without a GPU (the group here is gloo; the export
    names NCCL as the backend its ranks start)."""
    import json
    import os

    from examples.models import LlamaStyleBlock

    torch.manual_seed(0)
    block = LlamaStyleBlock(hidden=64, heads=4, kv_heads=2, ffn=128, max_seq=32).eval()
    cm = attncc.compile(block, (torch.randn(1, 16, 64),), target="cuda", parallel={"tp": 2})
    cm.export(directory)
    with open(os.path.join(directory, "manifest.json")) as f:
        return json.load(f)
