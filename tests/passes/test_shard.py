"""shard: tensor-parallel splits of lifted blocks, run as rank programs in lock step, equal the unsharded
interpreter and eager torch (fp32, 1e-5); the weights in the rank graphs are the real slices; sizes that do
not divide are errors naming the op, the dimension and the legal sizes."""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from attncc.frontends.torch_import import import_torch  # noqa: E402
from attncc.ir import IRError, run_graph  # noqa: E402
from attncc.ir.interpreter import run_ranks  # noqa: E402
from attncc.ir.passes import run_pipeline  # noqa: E402
from attncc.ir.passes.shard import shard_graph  # noqa: E402
from examples.models import LlamaStyleBlock  # noqa: E402

# the lifting half of the default pipeline (before fuse-qkv packs the projections)
LIFT = ("canonicalize,constant-fold,lift-attention,lift-mla,fold-repeat-kv,fold-kv-cache,lift-rotary,"
        "canonicalize-attention,fold-repeat-kv,fuse-attention,fold-repeat-kv,cse,canonicalize,dce")
TOL = dict(rtol=1e-5, atol=1e-5)


def lifted(model: torch.nn.Module, inputs: tuple):
    return run_pipeline(import_torch(model.eval(), inputs), LIFT)


def assert_sharding_matches(model, inputs, graph=None, **plan):
    """Lock-step run of the sharded graph == unsharded interpreter == eager torch; returns the program."""
    graph = graph if graph is not None else lifted(model, inputs)
    program = shard_graph(graph, **plan)
    arrays = [t.numpy() for t in inputs]
    with torch.no_grad():
        out = model(*inputs)
    want = [o.numpy() for o in (out if isinstance(out, (tuple, list)) else (out,))]
    for got, ref, eager in zip(run_ranks(program, arrays), run_graph(graph, arrays), want):
        np.testing.assert_allclose(ref, eager, **TOL)
        np.testing.assert_allclose(got, eager, **TOL)
    return program


def llama_block(heads=4, kv_heads=2, ffn=48, hidden=32, seed=0):
    """examples/models.py's Llama-style block at tiny size and its lifted graph, built once per session."""
    return _llama_block(heads, kv_heads, ffn, hidden, seed)


@functools.lru_cache(maxsize=None)
def _llama_block(heads, kv_heads, ffn, hidden, seed):
    torch.manual_seed(seed)
    model = LlamaStyleBlock(hidden=hidden, heads=heads, kv_heads=kv_heads, ffn=ffn, max_seq=16).eval()
    inputs = (torch.randn(2, 8, hidden),)
    return model, inputs, lifted(model, inputs)


def hand_block(heads: int, kv_heads: int, ffn: int, head_dim: int = 4):
    """A GQA attention + gated MLP block written directly in the IR (no torch), for the size errors."""
    from attncc import ir

    g = ir.Graph("hand")
    hidden = heads * head_dim
    x = g.add_input("x", "float32", (1, 4, hidden))
    rng = np.random.default_rng(0)

    def proj(name, n_in, n_out, v):
        return g.add1(ir.Linear(), [v, g.add_constant(rng.standard_normal((n_in, n_out)).astype(np.float32), name)],
                      name=name + "_proj")

    q, k, v = (g.add1(ir.Reshape((1, 4, h, head_dim)), [proj(n, hidden, h * head_dim, x)])
               for n, h in (("q", heads), ("k", kv_heads), ("v", kv_heads)))
    spec = ir.AttentionSpec(heads, kv_heads, head_dim, layout="bshd", mask=ir.MaskSpec(causal=True))
    a = g.add1(ir.Attention(spec=spec), [q, k, v], name="attn")
    h = g.add1(ir.Binary("add"), [x, proj("o", hidden, hidden, g.add1(ir.Reshape((1, 4, hidden)), [a]))])
    up = g.add1(ir.Activation("silu"), [proj("up", hidden, ffn, h)])
    g.set_outputs([g.add1(ir.Binary("add"), [h, proj("down", ffn, hidden, up)])])
    g.verify()
    return g


def collectives(graph) -> list[str]:
    return [n.op.op_name for n in graph.topological() if getattr(n.op, "is_collective", False)]


@pytest.mark.parametrize("tp", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_tp_llama_block_splits_heads_and_mlp_with_one_all_reduce_per_half(tp):
    model, inputs, graph = llama_block(heads=4, kv_heads=4)
    program = assert_sharding_matches(model, inputs, graph, tp=tp)
    assert program.world_size == tp and len(program.rank_graphs) == tp
    for r, g in enumerate(program.rank_graphs):
        assert collectives(g) == ["AllReduce", "AllReduce"]
        # each all-reduces the block half's output: batch 2 x 8 tokens x hidden 32 x 4 bytes
        assert [(c["op"], c["group"], c["ranks"], c["bytes"]) for c in program.collectives(r)] == \
            [("AllReduce", "tp", tp, 2 * 8 * 32 * 4)] * 2
        (attn,) = g.attention_ops()
        assert (attn.spec.num_heads, attn.spec.num_kv_heads) == (4 // tp, 4 // tp)
        wq = g.constants["q_proj_weight_t"]
        np.testing.assert_array_equal(wq, model.q_proj.weight.detach().numpy().T[:, r * 32 // tp:(r + 1) * 32 // tp])
        assert g.constants["gate_weight_t"].shape == (32, 48 // tp)


def test_tp_gqa_splits_kv_heads_when_they_divide():
    model, inputs, graph = llama_block(heads=4, kv_heads=2)
    program = assert_sharding_matches(model, inputs, graph, tp=2)
    assert [(a.spec.num_heads, a.spec.num_kv_heads) for g in program.rank_graphs for a in g.attention_ops()] == \
        [(2, 1), (2, 1)]


def test_tp_with_fewer_kv_heads_than_ranks_replicates_each_kv_head():
    model, inputs, graph = llama_block(heads=8, kv_heads=2)
    program = assert_sharding_matches(model, inputs, graph, tp=4)
    wk = model.k_proj.weight.detach().numpy().T          # (32, 2 heads * 4)
    for r, g in enumerate(program.rank_graphs):
        (attn,) = g.attention_ops()
        assert (attn.spec.num_heads, attn.spec.num_kv_heads) == (2, 1)
        kv = r // 2                                        # ranks 0,1 read KV head 0; ranks 2,3 KV head 1
        np.testing.assert_array_equal(g.constants["k_proj_weight_t"], wk[:, kv * 4:(kv + 1) * 4])
    assert any("replicated on 2 ranks" in n for n in program.notes)


def test_sequence_parallel_uses_reduce_scatter_and_all_gather():
    model, inputs, graph = llama_block(heads=4, kv_heads=2)
    program = assert_sharding_matches(model, inputs, graph, tp=2, sequence_parallel=True)
    ops = collectives(program.rank_graphs[0])
    assert ops.count("ReduceScatter") == 2 and "AllReduce" not in ops and "AllGather" in ops


def test_tp_that_does_not_divide_the_heads_names_the_op_and_legal_sizes():
    with pytest.raises(IRError, match=r"node 'scaled_dot_product_attention' \(Attention\).*tp=3 does not divide "
                                      r"the 4 query heads; legal tp sizes: \[1, 2, 4\]"):
        shard_graph(llama_block(heads=4, kv_heads=2)[2], tp=3)


def test_tp_that_does_not_divide_the_mlp_features_names_the_op_and_legal_sizes():
    with pytest.raises(IRError, match=r"node 'down_proj' \(Linear\).*tp=4 does not divide the 50 hidden features.*"
                                      r"legal tp sizes: \[1, 2, 5, 10, 25, 50\]"):
        shard_graph(hand_block(heads=4, kv_heads=4, ffn=50), tp=4)


def test_kv_heads_that_neither_divide_nor_multiply_are_an_error():
    with pytest.raises(IRError, match=r"node 'attn' \(Attention\).*tp=6 splits the 12 query heads but neither divides "
                                      r"nor is a multiple of the 4 KV heads; legal tp sizes: \[1, 2, 4, 12\]"):
        shard_graph(hand_block(heads=12, kv_heads=4, ffn=48), tp=6)


def test_shard_pass_keeps_rank_zero_and_rejects_bad_sizes():
    g = run_pipeline(llama_block()[2], "shard{tp=2}")
    assert g.metadata["parallel"] == {"tp": 2, "ep": 1, "pp": 1, "dp": 1, "rank": 0, "stage": 0}
    with pytest.raises(IRError, match="tp must be an integer >= 1, got 0"):
        shard_graph(g, tp=0)


@functools.lru_cache(maxsize=None)
def tiny_decoder():
    """A two-layer Llama-style decoder step with a KV cache and its lifted graph, built once per session."""
    from examples.models import TinyLlama

    torch.manual_seed(0)
    model = TinyLlama(vocab=64, hidden=32, layers=2, heads=4, kv_heads=2, ffn=48).eval()
    inputs = (torch.randint(0, 64, (1, 3)), torch.randn(2, 1, 2, 4, 8), torch.randn(2, 1, 2, 4, 8))
    return model, inputs, lifted(model, inputs)


def test_pp_two_layer_decoder_sends_between_stages():
    model, inputs, graph = tiny_decoder()
    program = assert_sharding_matches(model, inputs, graph, pp=2)
    first, second = program.rank_graphs
    assert program.stage_of(0) == 0 and program.stage_of(1) == 1
    assert len(first.attention_ops()) == len(second.attention_ops()) == 1
    sends = [n for n in first.topological() if n.op.op_name == "Send"]
    recvs = [n for n in second.topological() if n.op.op_name == "Recv"]
    assert sends and [n.inputs[0].type for n in sends] == [n.outputs[0].type for n in recvs]
    assert "lm_head_weight_t" in second.constants and "lm_head_weight_t" not in first.constants


def test_pp_with_tp_runs_four_ranks_in_lock_step():
    model, inputs, graph = tiny_decoder()
    program = assert_sharding_matches(model, inputs, graph, pp=2, tp=2)
    assert [program.rank_coords(r) for r in range(4)] == [{"tp": 0, "ep": 0, "pp": 0}, {"tp": 1, "ep": 0, "pp": 0},
                                                        {"tp": 0, "ep": 0, "pp": 1}, {"tp": 1, "ep": 0, "pp": 1}]


def test_pp_that_does_not_divide_the_layers_names_the_legal_sizes():
    with pytest.raises(IRError, match=r"pp=3 does not divide the 2 attention layers .*legal pp sizes: \[1, 2\]"):
        shard_graph(tiny_decoder()[2], pp=3)


@functools.lru_cache(maxsize=None)
def moe_block():
    """A Mixtral-style MoE layer in miniature (top-2 router, sort by expert, transformers' grouped matmuls
    for the 4 experts' up and down projections, weighted sum; tests/frontends/test_torch_moe_ops.py)."""
    pytest.importorskip("transformers", reason="transformers registers the grouped_mm op the block uses")
    sys.path.insert(0, str(ROOT / "tests" / "frontends"))
    from test_torch_moe_ops import SortedMoE

    torch.manual_seed(0)
    model, inputs = SortedMoE().eval(), (torch.randn(12, 16),)
    return model, inputs, lifted(model, inputs)


@functools.lru_cache(maxsize=None)
def mixtral():
    """transformers' Mixtral (one layer, 4 experts, top-2) and its lifted graph, built once per session."""
    pytest.importorskip("transformers", reason="transformers ships MixtralForCausalLM")
    from tests.models.hf_zoo import _MOE, _decoder

    model, inputs, _ = _decoder("MixtralConfig", "MixtralForCausalLM", layers=1, num_local_experts=4,
                                num_experts_per_tok=2, **_MOE)()
    return model, inputs, lifted(model, inputs)


def expert_weights(graph) -> dict[str, np.ndarray]:
    return {n.inputs[1].producer.op.key: graph.constants[n.inputs[1].producer.op.key]
            for n in graph.find("MatMul") if n.inputs[1].rank == 3}


def test_ep_moe_block_spreads_experts_and_combines_with_all_to_all():
    model, inputs, graph = moe_block()
    program = assert_sharding_matches(model, inputs, graph, ep=2)
    experts = expert_weights(graph)
    assert len(experts) == 2                               # the up and down expert stacks
    for e, g in enumerate(program.rank_graphs):
        assert program.rank_coords(e) == {"tp": 0, "ep": e, "pp": 0}
        for key, whole in experts.items():
            np.testing.assert_array_equal(g.constants[key], whole[2 * e:2 * e + 2])
        assert collectives(g).count("AllToAll") == 2       # the up projection's combine, then its dispatch


@pytest.mark.slow  # ~15 s: builds transformers' Mixtral
def test_ep_mixtral_moe_spreads_experts_and_combines_with_all_to_all():
    model, inputs, graph = mixtral()
    program = assert_sharding_matches(model, inputs, graph, ep=2)
    experts = expert_weights(graph)
    assert len(experts) == 2                               # gate_up and down of the one MoE layer
    for e, g in enumerate(program.rank_graphs):
        for key, whole in experts.items():
            np.testing.assert_array_equal(g.constants[key], whole[2 * e:2 * e + 2])
        ops = collectives(g)
        assert "AllToAll" in ops and all(op in ("AllToAll", "AllGather") for op in ops)


@pytest.mark.slow  # builds transformers' Mixtral
def test_ep_with_tp_runs_attention_heads_and_experts_on_four_ranks():
    model, inputs, graph = mixtral()
    program = assert_sharding_matches(model, inputs, graph, ep=2, tp=2)
    assert program.world_size == 4
    assert [a.spec.num_heads for a in program.rank_graphs[3].attention_ops()] == [2]


def test_ep_that_does_not_divide_the_experts_or_a_dense_model_is_an_error():
    with pytest.raises(IRError, match=r"\(MatMul\).*ep=3 does not divide the 4 experts; legal ep sizes: \[1, 2, 4\]"):
        shard_graph(moe_block()[2], ep=3)
    with pytest.raises(IRError, match="ep=2 but graph .* has no mixture-of-experts layer"):
        shard_graph(hand_block(heads=4, kv_heads=2, ffn=8), ep=2)


@functools.lru_cache(maxsize=None)
def deepseek_v3(layers=1):
    """transformers' DeepSeek-V3 (MLA: 4 heads, latent 16 + rope 4; layer 2 on is MoE with 8 routed experts
    and a shared one) and its lifted graph, built once per session."""
    pytest.importorskip("transformers", reason="transformers ships DeepseekV3ForCausalLM")
    from tests.models.hf_zoo import _decoder

    model, inputs, _ = _decoder(
        "DeepseekV3Config", "DeepseekV3ForCausalLM", layers=layers, hidden_size=32, intermediate_size=64,
        moe_intermediate_size=16, num_attention_heads=4, num_key_value_heads=4, n_routed_experts=8,
        n_shared_experts=1, num_experts_per_tok=2, n_group=2, topk_group=1, first_k_dense_replace=1,
        q_lora_rank=24, kv_lora_rank=16, qk_rope_head_dim=4, qk_nope_head_dim=8, v_head_dim=8,
        max_position_embeddings=64, rope_interleave=True)()
    return model, inputs, lifted(model, inputs)


def test_tp_mla_splits_heads_and_replicates_the_latent_cache():
    model, inputs, graph = deepseek_v3()
    (whole,) = graph.attention_ops()
    assert whole.spec.kv_source.kind == "mla"
    program = assert_sharding_matches(model, inputs, graph, tp=2)
    w_uk = whole.op.named_inputs(whole)["w_uk"].producer.op.key
    for r, g in enumerate(program.rank_graphs):
        (attn,) = g.attention_ops()
        assert (attn.spec.num_heads, attn.spec.num_kv_heads) == (2, 1)
        named = attn.op.named_inputs(attn)
        assert named["key"].shape == whole.op.named_inputs(whole)["key"].shape      # the latent, whole
        np.testing.assert_array_equal(g.constants[w_uk], graph.constants[w_uk][:, 2 * r:2 * r + 2])
        assert collectives(g) == ["AllReduce", "AllReduce"]
    assert any("latent cache (16 + 4 per token) replicated" in n for n in program.notes)


def test_tp_mla_decode_one_token_splits_heads():
    """Regression: with one token per sequence the query reshape (B, 1, H*D) -> (B, 1, H, D) was traced back
    to the 1-sized token axis, so no weight was sliced and every rank ran all heads under a "2 of 4" note."""
    model, inputs, _ = deepseek_v3()
    ids = (inputs[0][:, :1].contiguous(),)                 # a static decode export: (batch, 1) ids
    graph = lifted(model, ids)
    (whole,) = graph.attention_ops()
    assert whole.spec.kv_source.kind == "mla" and whole.inputs[0].shape[2] == 1
    program = assert_sharding_matches(model, ids, graph, tp=2)
    for g in program.rank_graphs:
        (attn,) = g.attention_ops()
        assert attn.spec.num_heads == 2 and attn.inputs[0].shape[1] == 2
    assert any("2 of 4 heads per rank" in n for n in program.notes)
    assert not any("head split not applied" in n for n in program.notes), program.notes


def test_tp_gqa_one_token_splits_heads_with_a_note(monkeypatch):
    model, _, _ = llama_block()
    x = (torch.randn(2, 1, 32),)
    program = assert_sharding_matches(model, x, lifted(model, x), tp=2)
    assert [a.spec.num_heads for g in program.rank_graphs for a in g.attention_ops()] == [2, 2]
    assert any("(GQA): 2 of 4 query heads and 1 of 2 KV heads per rank" in n for n in program.notes), program.notes
    # where the query cannot be traced to its weights the heads stay whole (still correct) and the notes say so
    from attncc.ir.passes import shard_attention

    monkeypatch.setattr(shard_attention, "_reshape_back", lambda *a: None)
    program = assert_sharding_matches(model, x, lifted(model, x), tp=2)
    assert any("head split not applied, all 4 heads run replicated" in n for n in program.notes), program.notes


def test_data_parallel_mla_attention_serves_each_rank_its_own_requests():
    model, inputs, graph = deepseek_v3()
    program = assert_sharding_matches(model, inputs, graph, tp=2, data_parallel_attention=True)
    for g in program.rank_graphs:
        (attn,) = g.attention_ops()
        assert attn.spec.num_heads == 4 and attn.inputs[0].shape[0] == 1      # every head, one of two requests
        assert [v.shape for v in g.inputs] == [(1, 8)]                          # the rank's own request ids
    assert [s["input_ids"] for s in program.input_slices] == [(0, 0, 1), (0, 1, 2)]


@pytest.mark.slow  # ~20 s: two DeepSeek-V3 layers (MLA + MoE with group routing) on four ranks
def test_deepseek_v3_mla_and_moe_over_tp_and_ep():
    model, inputs, graph = deepseek_v3(layers=2)
    program = assert_sharding_matches(model, inputs, graph, tp=2, ep=2)
    assert all("AllToAll" in collectives(g) for g in program.rank_graphs)


@pytest.mark.parametrize("tp", [2, 4])
def test_tp_decode_with_symbolic_dims_keeps_each_ranks_kv_cache_heads(tp):
    from tests.ir.test_roundtrip import gqa_graph, inputs as gqa_inputs

    graph = gqa_graph()                                   # 4 query heads, 2 KV heads, cache in and out
    program = shard_graph(graph, tp=tp)
    arrays = gqa_inputs()
    for got, want in zip(run_ranks(program, arrays), run_graph(graph, arrays)):
        np.testing.assert_allclose(got, want, **TOL)
    kv_per_rank = 2 // tp or 1
    for r, g in enumerate(program.rank_graphs):
        past = {v.name: v.shape for v in g.inputs}["past_k"]
        assert past == ("batch", kv_per_rank, "past", 8)  # the rank's cache heads are its input, not a slice
        head = r if tp == 2 else r // 2                   # tp=4: KV head 0 on ranks 0-1, head 1 on ranks 2-3
        assert program.input_slices[r]["past_k"] == (1, head, head + 1)
        assert "AllGather" not in collectives(g)          # present K/V stay on their ranks
    assert sorted(program.output_shards) == [0, 1, 2]       # attention output heads, present K, present V


def test_rank_graphs_print_parse_and_json_round_trip():
    from attncc.ir import graph_from_json, graph_to_json, parse_ir, print_ir

    model, inputs, graph = tiny_decoder()
    for g in shard_graph(graph, tp=2, pp=2).rank_graphs:
        text = print_ir(g)
        assert print_ir(parse_ir(text, constants=g.constants)) == text
        back = graph_from_json(graph_to_json(g))
        back.verify()
        assert print_ir(back) == text


def test_weights_without_data_are_sliced_without_being_allocated():
    """A meta-device import stands in zero-stride arrays for weights; their slices must stay views."""
    graph = llama_block(heads=4, kv_heads=4)[2].copy()
    graph.constants = {k: np.broadcast_to(np.zeros((), a.dtype), a.shape) if a.ndim == 2 else a
                       for k, a in graph.constants.items()}
    g = shard_graph(graph, tp=2).rank_graphs[1]
    assert g.constants["q_proj_weight_t"].shape == (32, 16) and g.constants["q_proj_weight_t"].strides == (0, 0)
    assert g.constants["down_weight_t_r1"].shape == (24, 32) and g.constants["down_weight_t_r1"].strides == (0, 0)


def test_vocab_parallel_lm_head_and_a_json_manifest():
    import json

    model, inputs, graph = tiny_decoder()
    program = shard_graph(graph, tp=2, pp=2)
    last = program.rank_graphs[3]
    assert last.constants["lm_head_weight_t"].shape == (32, 32)          # half of the 64-word vocabulary
    np.testing.assert_array_equal(last.constants["lm_head_weight_t"], model.lm_head.weight.detach().numpy().T[:, 32:])
    manifest = json.loads(json.dumps(program.manifest()))
    assert manifest["plan"] == {"tp": 2, "ep": 1, "pp": 2, "dp": 1} and manifest["world_size"] == 4
    assert [(r["tp"], r["pp"]) for r in manifest["ranks"]] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert manifest["output_shards"]["0"] == {"axis": 2, "blocks": [[2, 0, 0, 32], [3, 0, 32, 64]]}
    assert {c["op"] for c in manifest["ranks"][0]["collectives"]} == {"AllReduce", "AllGather", "Send"}


@pytest.mark.parametrize("family", ["phi3", pytest.param("gpt2", marks=pytest.mark.slow)])
def test_tp_fused_qkv_and_gate_up_keep_each_ranks_blocks(family):
    """Phi-3's qkv_proj and gate_up_proj, GPT-2's c_attn pack projections in one Linear: each rank keeps its
    Q, K and V heads' columns (and its gate and up features) of the packed weight, concatenated."""
    pytest.importorskip("transformers")
    import tests.models.hf_zoo as zoo

    model, inputs, _ = getattr(zoo, f"make_{family}")()
    graph = lifted(model, inputs)
    program = assert_sharding_matches(model, inputs, graph, tp=2)
    for r, g in enumerate(program.rank_graphs):
        assert [a.spec.num_heads for a in g.attention_ops()] == [2, 2]
        assert collectives(g) == ["AllReduce"] * 4                       # attention and MLP of two layers
    if family == "phi3":                                                 # 4 q heads, 2 kv heads, head dim 8
        key = next(k for k in graph.constants if "qkv_proj" in k)
        whole, mine = graph.constants[key], program.rank_graphs[1].constants[key]
        np.testing.assert_array_equal(mine, np.concatenate([whole[:, 16:32], whole[:, 40:48], whole[:, 56:64]], 1))
