"""ALiBi computed inside the cpu flash kernel (issue 26 item 4): the cpu target's Capabilities list `alibi` as a
kernel score mod, so decompose-variants leaves it on the op and no (1, H, Sq, Skv) bias constant exists; targets
without the capability keep the materialized bias.

Oracles: eager torch (llm-foundry MPT's gen_slopes / build_alibi_bias, reproduced in tests/variants) and torch's
scaled_dot_product_attention with the dense bias; the reference interpreter for the shape-generic build."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("tvm")

import attncc  # noqa: E402
from attncc import ir  # noqa: E402
from attncc.backends import target_capabilities  # noqa: E402
from attncc.backends.core.attention_config import AttentionKernelConfig  # noqa: E402
from attncc.backends.core.program import decompose_variants  # noqa: E402
from attncc.backends.cpu.attention import build_attention_kernel  # noqa: E402
from attncc.frontends.torch_import import import_torch  # noqa: E402
from attncc.ir.kernels import FusionRules, kernel_launches  # noqa: E402
from attncc.ir.ops import Attention, AttentionSpec, MaskSpec  # noqa: E402
from attncc.ir.ops.attention_features.position_bias import Alibi  # noqa: E402

try:
    from tests.variants.test_position_bias import MPTAlibiAttention
except ImportError:  # tests/ is not a package here
    import importlib.util
    import pathlib
    _p = pathlib.Path(__file__).resolve().parents[1] / "variants" / "test_position_bias.py"
    _spec = importlib.util.spec_from_file_location("_position_bias_tests", _p)
    _mod = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    MPTAlibiAttention = _mod.MPTAlibiAttention


def mpt_slopes(heads: int, max_bias: float) -> torch.Tensor:
    """llm-foundry MPT gen_slopes."""
    n = 2 ** math.ceil(math.log2(heads))
    m = torch.arange(1, n + 1, dtype=torch.float64) * (max_bias / n)
    s = 1.0 / torch.pow(2, m)
    return torch.cat([s[1::2], s[::2]])[:heads] if n != heads else s


# ---- the kernel alone -----------------------------------------------------------------------------------------
KERNEL_CASES = {
    "prefill_causal_gqa_h6": dict(q_heads=6, kv_heads=2, q_len=70, kv_len=70, causal=True),
    "decode_q3_of_65": dict(q_heads=4, kv_heads=4, q_len=3, kv_len=65, causal=True),
    "prefill_noncausal_top_left": dict(q_heads=4, kv_heads=4, q_len=33, kv_len=65, alignment="top_left"),
}


@pytest.mark.parametrize("name", [n if n != "prefill_noncausal_top_left" else pytest.param(n, marks=pytest.mark.slow)
                                  for n in KERNEL_CASES])
def test_kernel_alibi_matches_a_dense_bias(name):
    kw = KERNEL_CASES[name]
    cfg = AttentionKernelConfig(batch=2, head_dim=32, v_head_dim=32, scale=32 ** -0.5, alibi=4.0, **kw)
    kern = build_attention_kernel(cfg)
    assert kern.kind == ("decode" if name.startswith("decode") else "prefill")
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, cfg.q_heads, cfg.q_len, 32, generator=g)
    k, v = (torch.randn(2, cfg.kv_heads, cfg.kv_len, 32, generator=g) for _ in range(2))
    got = kern(q, k, v, None)
    pos = torch.arange(cfg.q_len)[:, None] + cfg.position_offset
    rel = (torch.arange(cfg.kv_len)[None, :] - pos).double()
    bias = mpt_slopes(cfg.q_heads, 4.0)[:, None, None] * rel
    if cfg.causal:
        bias = bias.masked_fill(rel > 0, float("-inf"))
    rep = cfg.q_heads // cfg.kv_heads
    want = torch.nn.functional.scaled_dot_product_attention(
        q.double(), k.double().repeat_interleave(rep, 1), v.double().repeat_interleave(rep, 1), attn_mask=bias[None])
    np.testing.assert_allclose(got.double().numpy(), want.numpy(), rtol=1e-4, atol=1e-5)


# ---- which targets keep it --------------------------------------------------------------------------------------
def _mpt_graph(heads=6, causal=True, n=7):
    torch.manual_seed(0)
    model, x = MPTAlibiAttention(heads, 8.0, causal).eval(), torch.randn(2, n, 48)
    return model, x, import_torch(model, (x,))


def _square_constants(graph, n):
    return [k for k, c in graph.constants.items() if np.ndim(c) >= 2 and np.shape(c)[-2:] == (n, n)]


def test_capability_decides_kept_or_materialized():
    _, x, g = _mpt_graph()
    assert "alibi" in target_capabilities("cpu").kernel_score_mods
    assert "alibi" not in target_capabilities("cuda").kernel_score_mods
    kept = decompose_variants(g, ("alibi",))
    assert [m.kind for m in kept.attention_ops()[0].op.spec.score_mods] == ["alibi"] and not _square_constants(kept, 7)
    # the cost report's kernels under cpu rules: the flash kernel, not the host reference
    parts = [launch.part for launch in kernel_launches(kept, rules=FusionRules(kernel_score_mods=("alibi",)))]
    assert "attention" in parts and "reference" not in parts
    plain = decompose_variants(g)          # a target without the capability: the (1, H, S, S) bias constant
    assert not plain.attention_ops()[0].op.spec.features_list() and _square_constants(plain, 7)
    np.testing.assert_allclose(ir.run_graph(plain, [x.numpy()])[0], ir.run_graph(g, [x.numpy()])[0], rtol=1e-5)


# ---- whole builds ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("heads,causal", [(6, True), pytest.param(4, False, marks=pytest.mark.slow)],
                         ids=["h6-causal", "h4-noncausal"])
def test_mpt_alibi_cpu_build_computes_the_bias_in_kernel(heads, causal):
    model, x, _ = _mpt_graph(heads, causal)
    compiled = attncc.compile(model, (x,), target="cpu")
    out = compiled(x)
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(np.asarray(out[0] if isinstance(out, (list, tuple)) else out), want,
                               rtol=1e-4, atol=1e-5)
    program = compiled.executable.artifacts["program"]
    assert not _square_constants(program.graph, 7)
    for runner in program.runners.values():
        plan = runner.plan
        consts = [(n, i["shape"]) for n, i in plan.values.items() if i["storage"] == "const"]
        assert not [c for c in consts if list(c[1][-2:]) == [7, 7]], consts
        steps = [s for s in plan.steps if s["kind"] == "attention"]
        assert steps and all(s["config"]["alibi"] == 8.0 and s["mask"] is None for s in steps), steps
        assert not [s for s in plan.steps if s["kind"] == "reference"]


def test_symbolic_length_alibi_builds_once_for_every_length(tmp_path, monkeypatch):
    """With the bias in the kernel, a symbolic sequence length needs no (S, S) constant: one shape-generic build
    (the decomposition could not build the constant for a symbolic length)."""
    from attncc.backends.core.cache import CompileCache
    from attncc.backends.cpu.backend import CpuBackend

    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    spec = AttentionSpec(num_heads=6, num_kv_heads=2, head_dim=16, mask=MaskSpec(causal=True),
                         score_mods=(Alibi(max_bias=8.0),))
    g = ir.Graph("alibi_dyn")
    ins = [g.add_input("q", "float32", (1, 6, "seq", 16))] + \
        [g.add_input(n, "float32", (1, 2, "seq", 16)) for n in ("k", "v")]
    g.set_outputs(list(g.add(Attention(spec=spec), ins, name="attn")))
    ex = CpuBackend(cache=CompileCache()).lower(g, {})
    rng = np.random.default_rng(0)
    for n in (40, 9):
        xs = [rng.standard_normal((1, h, n, 16)).astype(np.float32) for h in (6, 2, 2)]
        np.testing.assert_allclose(ex(xs)[0], ir.run_graph(g, xs)[0], rtol=1e-4, atol=1e-5)
    program = ex.artifacts["program"]
    assert list(program.runners) == ["generic"] and program.builds == 1


def test_generic_te_attention_computes_alibi_too(tmp_path, monkeypatch):
    """options['attention'] == 'generic' (the TE fallback) reads the kept alibi from the spec as well."""
    from attncc.backends.core.cache import CompileCache
    from attncc.backends.cpu.backend import CpuBackend

    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    model, x, g = _mpt_graph(6, False, 5)
    ex = CpuBackend(cache=CompileCache()).lower(g, {"attention": "generic"})
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(ex([x.numpy()])[0], want, rtol=1e-4, atol=1e-5)
    program = ex.artifacts["program"]
    assert not _square_constants(program.graph, 5)
    assert [m.kind for m in program.graph.attention_ops()[0].op.spec.score_mods] == ["alibi"]
    steps = [s["op"] for r in program.runners.values() for s in r.plan.steps]
    assert "Attention.attention_te" in steps, steps


# ---- T5's bucketed relative bias ---------------------------------------------------------------------------------
def _t5_reference(q, k, v, table, rule, causal, offset=0, scale=1.0):
    """SDPA with the dense bias table[h, bucket(j - i)] from transformers' T5Attention bucket rule."""
    t5 = pytest.importorskip("transformers.models.t5.modeling_t5")
    sq, skv = q.shape[2], k.shape[2]
    rel = torch.arange(skv)[None, :] - (torch.arange(sq)[:, None] + offset)
    bias = torch.as_tensor(table).double()[:, t5.T5Attention._relative_position_bucket(rel, *rule)]
    if causal:
        bias = bias.masked_fill(rel > 0, float("-inf"))
    rep = q.shape[1] // k.shape[1]
    return torch.nn.functional.scaled_dot_product_attention(
        q.double(), k.double().repeat_interleave(rep, 1), v.double().repeat_interleave(rep, 1), attn_mask=bias[None],
        scale=scale)


@pytest.mark.parametrize("name,kw,rule", [
    ("prefill_bidirectional", dict(q_heads=4, kv_heads=4, q_len=70, kv_len=300), (True, 32, 128)),
    ("decode_causal_gqa", dict(q_heads=4, kv_heads=2, q_len=2, kv_len=300, causal=True), (False, 32, 128))])
def test_kernel_t5_bias_matches_transformers_buckets(name, kw, rule):
    cfg = AttentionKernelConfig(batch=2, head_dim=32, v_head_dim=32, scale=32 ** -0.5, mask_input="table",
                                t5_bias=rule, **kw)
    kern = build_attention_kernel(cfg)
    assert kern.kind == name.split("_")[0]
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, cfg.q_heads, cfg.q_len, 32, generator=g)
    k, v = (torch.randn(2, cfg.kv_heads, cfg.kv_len, 32, generator=g) for _ in range(2))
    table = torch.randn(cfg.q_heads, rule[1], generator=g) * 3
    got = kern(q, k, v, table.reshape(1, cfg.q_heads, 1, rule[1]))
    want = _t5_reference(q, k, v, table, rule, cfg.causal, cfg.position_offset, cfg.scale)
    np.testing.assert_allclose(got.double().numpy(), want.numpy(), rtol=1e-4, atol=1e-5)


def test_symbolic_length_t5_bias_builds_once_and_reads_only_the_table(tmp_path, monkeypatch):
    from attncc.backends.core.cache import CompileCache
    from attncc.backends.cpu.backend import CpuBackend
    from attncc.ir.ops.attention_features.position_bias import BucketedBias

    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    rule = (True, 32, 128)
    spec = AttentionSpec(num_heads=4, num_kv_heads=4, head_dim=16, scale=0.25,
                         score_mods=(BucketedBias(num_buckets=32, max_distance=128, bidirectional=True),))
    table = np.random.default_rng(1).standard_normal((4, 32)).astype(np.float32) * 3
    g = ir.Graph("t5_dyn")
    ins = [g.add_input(n, "float32", (1, 4, "seq", 16)) for n in ("q", "k", "v")]
    g.set_outputs(list(g.add(Attention(spec=spec), ins + [g.add_constant(table, "rel_table")], name="attn")))
    assert "bucketed_bias" in target_capabilities("cpu").kernel_score_mods
    ex = CpuBackend(cache=CompileCache()).lower(g, {})
    rng = np.random.default_rng(0)
    for n in (150, 9):
        xs = [rng.standard_normal((1, 4, n, 16)).astype(np.float32) for _ in range(3)]
        want = _t5_reference(*(torch.from_numpy(x) for x in xs), table, rule, False, scale=0.25)
        np.testing.assert_allclose(ex(xs)[0], want.numpy(), rtol=1e-4, atol=1e-5)
    program = ex.artifacts["program"]
    assert list(program.runners) == ["generic"] and program.builds == 1
    plan = program.runners["generic"].plan
    (step,) = [s for s in plan.steps if s["kind"] == "attention"]
    assert step["config"]["t5_bias"] == rule and step["mask"][1] == [1, 4, 1, 32], step
    # a target without the capability materializes the bias (and, for a symbolic length, cannot: the reference)
    assert decompose_variants(g).attention_ops()[0].op.spec.score_mods


@pytest.mark.slow   # ~20 s: a tiny Hugging Face T5 (2+2 layers) built for cpu
def test_hf_t5_cpu_build_reads_bias_tables_not_matrices():
    pytest.importorskip("transformers")
    from tests.models.hf_zoo import make_t5

    model, (ids, dec), _ = make_t5("sdpa")
    cm = attncc.compile(model, (ids, dec), target="cpu")
    got = cm(ids, dec)
    with torch.no_grad():
        want = model(ids, dec)
    pick = (lambda o: o[0] if isinstance(o, (tuple, list)) else o)
    np.testing.assert_allclose(np.asarray(pick(got)), pick(want).numpy(), rtol=1e-4, atol=1e-5)
    s, t = ids.shape[1], dec.shape[1]
    for runner in cm.executable.artifacts["program"].runners.values():
        plan = runner.plan
        steps = [st for st in plan.steps if st["kind"] == "attention"]
        assert sum(st["config"]["t5_bias"] is not None for st in steps) == 4, steps   # enc + dec self attention
        assert not [st for st in plan.steps if st["kind"] == "reference"]
        square = [n for n, i in plan.values.items() if i["storage"] == "const" and list(i["shape"][-2:]) in ([s, s], [t, t])
                  and "weight" not in n]
        assert not square, square
