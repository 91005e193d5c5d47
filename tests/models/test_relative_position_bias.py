"""Relative position biases are lifted into spec fields (issue 26 item 4e): T5's log-bucketed bias becomes
`bucketed_bias` + a (H, num_buckets) table, Swin's windowed bias `window_bias` + a (H, (2w-1)²) table, and no dense
(B, H, S, S) bias input is left (Swin's shifted-window -100 regions stay an additive (windows, 1, S, S) input). The
bias the spec computes is checked cell by cell against the Hugging Face modules' own bias code
(T5Attention.compute_bias; SwinRelativePositionBias + SwinLayer.get_attn_mask), after the cpu pipeline (the graph
that is compiled), and the whole model against eager torch."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontends"))
from torch_helpers import assert_matches_eager, import_torch  # noqa: E402

import attncc  # noqa: E402
from attncc.ir.passes._rewrite import constant_array  # noqa: E402
from tests.models.hf_zoo import make_swin, make_t5  # noqa: E402


def _forms(fast: str | None) -> list:
    return [pytest.param(f, marks=() if f == fast else pytest.mark.slow) for f in ("sdpa", "eager")]


def _assert_same(got: np.ndarray, want: np.ndarray) -> None:
    """Equal after broadcasting both to their joint shape (the model may expand the bias over batch)."""
    shape = np.broadcast_shapes(got.shape, want.shape)
    np.testing.assert_allclose(np.broadcast_to(got, shape), np.broadcast_to(want, shape), rtol=1e-6, atol=1e-6)


def _mask_inputs(graph, kind: str) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
    """Per attention site (graph order): (the bias its spec field computes, its remaining additive mask input);
    None where it has none. A site with a position bias carries `kind` and no other score mod."""
    out = []
    for n in graph.attention_ops():
        named = n.op.named_inputs(n)
        bias = None
        if n.spec.score_mods:
            (mod,) = n.spec.score_mods
            assert mod.kind == kind, n.spec.summary()
            table = constant_array(graph, named["rel_table"])
            q, k = named["query"].shape[2], named["key"].shape[2]
            bias = mod.bias(n.spec, q, k, table)[None]
        rest = None
        if "mask" in named:
            assert n.spec.mask.input == "additive", n.spec.summary()
            rest = constant_array(graph, named["mask"])
            assert rest is not None, f"{n.name}: the mask should fold to a constant for static shapes"
        out.append((bias, rest))
    return out


@pytest.mark.parametrize("form", _forms(None))   # ~5 s each: slow (the default suite's budget); T5 runs by default
def test_swin_windowed_relative_bias_is_the_additive_input(form):
    model, (x,), sites = make_swin(form)
    graph = import_torch(model, (x,))
    optimized = attncc.optimize(graph, "cpu")
    masks = _mask_inputs(optimized, "window_bias")
    assert len(masks) == sites == 4
    blocks = [b for stage in model.encoder.encoder.layers for b in stage.blocks]
    with torch.no_grad():
        model(x)   # Swin sets each block's shift from the input size in forward (no shift where 1 window fits)
        for (bias, rest), block, windows_side in zip(masks, blocks, (2, 2, 1, 1)):
            want = block.attention.relative_position_bias().numpy()            # (1, heads, 16, 16)
            side = windows_side * block.window_size
            shift = block.get_attn_mask(side, side, torch.float32, "cpu")       # (windows, 16, 16) or None
            assert bias is not None
            _assert_same(bias, want)
            if shift is None:
                assert rest is None
            else:   # only the head-independent shifted-window regions stay an input
                assert rest.shape[1] == 1
                _assert_same(rest, np.tile(shift.numpy(), (x.shape[0], 1, 1))[:, None])
    assert blocks[1].shift_size > 0   # the shifted-window block really carries the -100 region mask
    assert_matches_eager(optimized, model, (x,))


@pytest.mark.parametrize("form", _forms("sdpa"))
def test_t5_bucketed_bias_is_the_additive_input(form):
    model, (ids, dec_ids), sites = make_t5(form)
    graph = import_torch(model, (ids, dec_ids))
    optimized = attncc.optimize(graph, "cpu")
    nodes, masks = optimized.attention_ops(), _mask_inputs(optimized, "bucketed_bias")
    assert len(masks) == sites == 6
    t5 = model.lm
    enc_bias_layer = t5.encoder.block[0].layer[0].SelfAttention     # layer 0 owns the bias; later layers reuse it
    dec_bias_layer = t5.decoder.block[0].layer[0].SelfAttention
    s, t = ids.shape[1], dec_ids.shape[1]
    with torch.no_grad():
        enc_bias = enc_bias_layer.compute_bias(s, s).numpy()      # (1, H, s, s), bidirectional buckets
        dec_bias = dec_bias_layer.compute_bias(t, t).numpy()      # (1, H, t, t), causal buckets
    by_shape = {(s, s): [], (t, t): [], (t, s): []}
    for n, m in zip(nodes, masks):
        q = n.op.named_inputs(n)["query"].shape
        k = n.op.named_inputs(n)["key"].shape
        seq_axis = 1 if n.spec.layout == "bshd" else 2
        by_shape[(q[seq_axis], k[seq_axis])].append((n, m))
    assert all(n.spec.score_mods for n, _ in by_shape[(s, s)] + by_shape[(t, t)])
    assert [len(v) for v in by_shape.values()] == [2, 2, 2]   # encoder self, decoder self, decoder cross
    for _, (bias, rest) in by_shape[(s, s)]:
        assert rest is None
        _assert_same(bias, enc_bias)
    visible = np.tril(np.ones((t, t), bool))
    for n, (bias, rest) in by_shape[(t, t)]:
        assert rest is None
        _assert_same(bias[..., visible], dec_bias[..., visible])
        # future keys are hidden by the spec's causal field (HF's SDPA path adds its causal mask into the bias)
        assert n.spec.mask.causal, n.spec.summary()
    for n, (bias, rest) in by_shape[(t, s)]:
        assert bias is None and rest is None, n.spec.summary()   # cross attention: no position bias, no padding
    assert_matches_eager(optimized, model, (ids, dec_ids))
