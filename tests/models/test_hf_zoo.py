"""The Hugging Face zoo (tests/models/hf_zoo.py: real `transformers` model code, tiny random configs) through the
torch frontend in both attention implementations (`sdpa` and `eager`): every attention site is lifted (counted
against the config's layers), each lifted spec is the one the config defines (heads, kv heads, head dims, scale,
causal / sliding window, softcap, RoPE, mask inputs), softmaxes left unlifted (MoE routers) are each explained in
graph.diagnostics, the IR interpreter matches eager torch, and the cpu build matches eager (fp32, rtol 1e-4).

Fast by default: a few families (FAST_LIFT, FAST_BUILD); every family and both forms under `-m slow`.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontends"))
from torch_helpers import eager_outputs, import_torch, run_graph  # noqa: E402

import attncc  # noqa: E402
from tests.models.hf_zoo import HF_ZOO  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5


@dataclass(frozen=True)
class Expect:
    """What each family's config says its attention sites are (after attncc.optimize for cpu)."""
    heads: int = 4
    kv_heads: int = 4
    head_dim: int = 8
    v_head_dim: int | None = None
    scale: float | None = None           # default head_dim ** -0.5
    causal_sites: int = 0                # sites with spec.mask.causal
    windows: frozenset = frozenset({None})   # the window_left values over the sites
    softcap: float | None = None
    rope_dim: int | None = None          # RoPE folded into the spec with this rotary dim (None: no RoPE)
    mask_sites: int = 0                  # sites keeping a mask tensor input (padding, Swin's shifted regions)
    position_bias: tuple | None = None   # (score-mod kind, sites): ALiBi / relative bias lifted into spec fields
    router_softmaxes: int = 0            # softmaxes that are MoE routers, not attention (each needs a diagnostic)
    mla: tuple | None = None             # (latent_dim, rope_dim) of the MLA kv_source (None: no latent KV source)
    notes: dict = field(default_factory=dict)


_DEC = dict(kv_heads=2, causal_sites=2, rope_dim=8)
EXPECT: dict[str, Expect] = {
    "llama": Expect(**_DEC),
    "mistral": Expect(**_DEC, windows=frozenset({3})),              # sliding_window=4: 3 keys back + itself
    "qwen2": Expect(**_DEC),
    "phi3": Expect(**{**_DEC, "rope_dim": 4}),                       # partial_rotary_factor 0.5
    "gemma": Expect(**_DEC),
    # query_pre_attn_scalar 16 -> scale 1/4; sliding window on alternate layers; attention logit softcap 50
    "gemma2": Expect(**_DEC, scale=0.25, windows=frozenset({3, None}), softcap=50.0),
    "gpt2": Expect(causal_sites=2),
    "gpt_neox": Expect(causal_sites=2, rope_dim=4),                  # rotary_pct 0.5
    # new_decoder_architecture with num_kv_heads=2: K/V are broadcast_to'd per query group in bshd
    "falcon": Expect(kv_heads=2, causal_sites=2, rope_dim=8),
    "bloom": Expect(causal_sites=2, position_bias=("alibi", 2)),     # ALiBi: closed-form slopes, no bias input
    "opt": Expect(causal_sites=2),                                   # q scaled after its projection: scale in spec
    "mixtral": Expect(**_DEC, router_softmaxes=2),
    "qwen2_moe": Expect(**_DEC, router_softmaxes=2),
    # MLA as HF computes it (k = [k_nope from kv_b_proj, k_pe broadcast]) is lifted by lift-mla into the MLA
    # feature: one shared latent KV head (kv_lora_rank 16) + the decoupled 4-dim RoPE key, qk dim 8+4, v dim 8;
    # the RoPE stays spelled out before the op (the feature takes q and k_pe already rotated)
    "deepseek_v3": Expect(kv_heads=1, head_dim=12, v_head_dim=8, causal_sites=2, mla=(16, 4)),
    "bert": Expect(mask_sites=2),                                    # the padded row's mask
    "roberta": Expect(mask_sites=2),
    "distilbert": Expect(mask_sites=2),
    # T5: no 1/sqrt(d) scale; relative position bias as an additive input on the 4 self-attention sites
    "t5": Expect(scale=1.0, causal_sites=2, position_bias=("bucketed_bias", 4)),   # self-attention sites
    "bart": Expect(causal_sites=2),
    "vit": Expect(),
    "clip_vision": Expect(),
    # windowed relative position bias as a (H, 49) table; the shifted block keeps its -100 regions as an input
    "swin": Expect(mask_sites=1, position_bias=("window_bias", 4), notes={"heads": (2, 2, 4, 4)}),
    "whisper": Expect(),
    "wav2vec2": Expect(),
}

# fast by default: lifting + interpreter for a conv speech encoder (GroupNorm, conv positional embedding), one cpu
# build (a conv-patch vision encoder through SDPA); HF Llama has its own default tests (test_torch_transformers.py),
# T5 and Swin theirs (test_relative_position_bias.py). Everything else: -m slow.
FAST_LIFT = {("wav2vec2", "sdpa")}
FAST_BUILD = {("vit", "sdpa")}


def _cases(fast: set) -> list:
    return [pytest.param(f, v, marks=() if (f, v) in fast else pytest.mark.slow, id=f"{f}-{v}")
            for f in HF_ZOO for v in ("sdpa", "eager")]


def build(family: str, form: str):
    """(module, inputs, sites), skipping forms transformers itself refuses (Gemma2/BLOOM have no SDPA path)."""
    try:
        return HF_ZOO[family](form)
    except ValueError as e:
        if "does not support an attention implementation" in str(e):
            pytest.skip(f"transformers has no {form!r} attention for {family}: {str(e)[:80]}")
        raise


def check_specs(graph, family: str, form: str) -> None:
    """Every lifted spec against the config's expectation."""
    e = EXPECT[family]
    sites = graph.attention_ops()
    specs = [n.spec for n in sites]
    summary = "\n".join(s.summary() for s in specs)
    heads = e.notes.get("heads", (e.heads,) * len(specs))
    assert [s.num_heads for s in specs] == list(heads), summary
    for s, h in zip(specs, heads):
        assert s.num_kv_heads == (h if e.kv_heads == e.heads else e.kv_heads), summary   # MHA stages: kv = q heads
        assert s.head_dim == e.head_dim, summary
        assert s.v_head_dim == (e.v_head_dim or e.head_dim), summary
        assert s.scale == pytest.approx(e.scale if e.scale is not None else e.head_dim ** -0.5, rel=1e-6), summary
        assert s.softcap == e.softcap, summary
        assert (s.rope.rotary_dim if s.rope is not None else None) == e.rope_dim, summary
        mla = s.kv_source if s.kv_source is not None and s.kv_source.kind == "mla" else None
        assert ((mla.latent_dim, mla.rope_dim) if mla else None) == e.mla, summary
    assert {s.mask.window_left for s in specs} == set(e.windows), summary
    mask_sites = sum(s.mask.input != "none" for s in specs)
    causal = sum(s.mask.causal for s in specs)
    # (T5's SDPA path adds the causal mask into the position bias: lift-position-bias gives it back to the causal
    # field; the biases are checked cell by cell in test_relative_position_bias.py)
    assert causal == e.causal_sites and mask_sites == e.mask_sites, summary
    mods = [m.kind for s in specs for m in s.score_mods]
    assert mods == ([e.position_bias[0]] * e.position_bias[1] if e.position_bias else []), summary


def _close(got, want) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), w, rtol=RTOL, atol=ATOL)


def imported(family: str, form: str):
    """(model, inputs, sites, graph) with every attention site lifted and each unlifted softmax explained."""
    model, inputs, sites = build(family, form)
    graph = import_torch(model, inputs)
    assert len(graph.attention_ops()) == sites, [n.spec.summary() for n in graph.attention_ops()]
    left = graph.find("Softmax")
    assert len(left) == EXPECT[family].router_softmaxes
    explained = {d["node"] for d in graph.diagnostics if d["kind"] == "attention-not-lifted"}
    assert {n.name for n in left} <= explained   # every softmax not lifted says why
    return model, inputs, sites, graph


@pytest.mark.parametrize("family, form", _cases(FAST_LIFT))
def test_hf_family_lifts_with_the_config_spec_and_matches_eager(family, form):
    model, inputs, sites, graph = imported(family, form)
    _close(run_graph(graph, [t.numpy() for t in inputs]), eager_outputs(model, inputs))
    optimized = attncc.optimize(graph, "cpu")
    assert len(optimized.attention_ops()) == sites
    check_specs(optimized, family, form)
    _close(run_graph(optimized, [t.numpy() for t in inputs]), eager_outputs(model, inputs))


@pytest.mark.parametrize("family, form", _cases(FAST_BUILD))
def test_hf_family_compiles_for_cpu_and_matches_eager(family, form, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))  # really build, never reuse a plan
    model, inputs, sites, graph = imported(family, form)
    compiled = attncc.compile(graph, inputs, target="cpu")
    assert not [d for d in compiled.diagnostics if d["kind"] == "lowering"]   # nothing fell back to the host
    assert len(compiled.graph.attention_ops()) == sites
    check_specs(compiled.graph, family, form)
    got = compiled(*inputs)
    _close(got if isinstance(got, (tuple, list)) else (got,), eager_outputs(model, inputs))


def test_every_family_has_an_expectation():
    assert set(EXPECT) == set(HF_ZOO)
    assert all(math.isfinite(e.scale or 1.0) for e in EXPECT.values())
