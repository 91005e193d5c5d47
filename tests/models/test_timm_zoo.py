"""timm vision families (real timm model code, random weights from configs, no downloads) through the torch
frontend: every dot-product attention site lifted (counted), every softmax left unlifted explained in
graph.diagnostics, the IR interpreter and the cpu build against eager torch (fp32, relative 1e-4).

The table below is the model-support table the README reproduces: per family, the lifted sites and softmaxes
left as plain ops (with why), or why the family does not import. Default suite: a small LeViT (batch norm,
hard-swish, attention with a learned bias) built for cpu; every family under `-m slow`.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontends"))
from torch_helpers import eager_outputs, import_torch, run_graph  # noqa: E402

import attncc  # noqa: E402
from tests.models.timm_compat import import_timm  # noqa: E402

RTOL = 1e-4


@dataclass(frozen=True)
class Family:
    model: str                 # timm model name (random weights: pretrained=False)
    img: int                   # input image size (small where the config allows it)
    sites: int                 # attention sites lifted at import
    unlifted: int = 0          # softmaxes left as plain ops (each has an attention-not-lifted diagnostic)
    why: str = ""              # why those softmaxes are not attention sites (or why there is no attention)


# measured with timm 1.0.31 (import + interpreter on every family; cpu build as the slow test runs it)
ZOO: dict[str, Family] = {
    "levit": Family("levit_128s", 224, 11),
    "mobilevit": Family("mobilevit_xxs", 64, 9),
    "mobilevitv2": Family("mobilevitv2_050", 64, 0, 9, "separable self-attention: the softmax is over a "
                          "1-channel context score from a 1x1 conv, not over Q·Kᵀ (linear in tokens; no attention site)"),
    "efficientformer": Family("efficientformer_l1", 224, 1),
    "efficientformerv2": Family("efficientformerv2_s0", 64, 0, 5, "talking-heads 1x1 convs mix heads before and "
                                "after the softmax (issue 26 item 4, head mixing around the softmax)"),
    "fastvit": Family("fastvit_t8", 64, 0, 0, "t8 has no attention (RepMixer token mixing only)"),
    "maxvit": Family("maxvit_nano_rw_256", 64, 14),
    "xcit": Family("xcit_nano_12_p16_224", 64, 14),
    "repvit": Family("repvit_m1", 64, 0, 0, "a pure convolutional network (no attention)"),
    # lifted as variant features (issue 26 item 4): talking heads, gated positional self-attention, factorized
    "cait": Family("cait_xxs24_224", 64, 26),
    "convit": Family("convit_tiny", 64, 12),
    "coat_lite": Family("coat_lite_tiny", 64, 8),
    "mvitv2": Family("mvitv2_tiny", 64, 0, 10, "pooled K/V with decomposed relative-position terms (issue 26 "
                     "item 4)"),
    "swin": Family("swin_tiny_patch4_window7_224", 224, 7, 5, "shifted-window blocks: the shift mask "
                   "(1, nW, 1, N, N) broadcasts over part of the merged (batch, windows, heads) axes"),
    "pit": Family("pit_ti_224", 224, 12),
    "efficientvit_msra": Family("efficientvit_m0", 224, 0, 24, "cascaded group attention computes V·Pᵀ: the "
                                "probabilities feed a Transpose, not a MatMul with V"),
    "efficientvit_mit": Family("efficientvit_b0", 64, 0, 0, "ReLU linear attention (no softmax)"),
    "tiny_vit": Family("tiny_vit_5m_224", 224, 10),
    "nextvit": Family("nextvit_small", 64, 4),
    "edgenext": Family("edgenext_xx_small", 64, 3),
    "poolformer": Family("poolformer_s12", 64, 0, 0, "pooling token mixer (no attention)"),
    "convnext": Family("convnext_atto", 64, 0, 0, "a pure convolutional network (no attention)"),
    "deit": Family("deit_tiny_patch16_224", 224, 12),
    "crossvit": Family("crossvit_tiny_240", 240, 21),
    "twins_svt": Family("twins_svt_small", 64, 18),
    "twins_pcpvt": Family("twins_pcpvt_small", 64, 16),
    "pvt_v2": Family("pvt_v2_b0", 64, 8),
    "tnt": Family("tnt_s_patch16_224", 224, 24),
}

# families that do not import, with the exact reason (checked: the error must still say it)
FAILS: dict[str, tuple[str, int, str]] = {
    "volo": ("volo_d1_224", 224, "index_put with several index tensors or accumulate=True is not supported"),
}


def _build(model_name: str, img: int):
    timm = import_timm()
    torch.manual_seed(0)
    try:
        model = timm.create_model(model_name, pretrained=False, num_classes=10, img_size=img)
    except TypeError:   # families whose constructor takes no img_size
        model = timm.create_model(model_name, pretrained=False, num_classes=10)
    return model.eval(), (torch.randn(1, 3, img, img),)


def _close(got, want) -> None:
    scale = float(np.max(np.abs(want))) or 1.0
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale)


def _imported(model, inputs, sites: int, unlifted: int):
    graph = import_torch(model, inputs)
    assert len(graph.attention_ops()) == sites, [n.spec.summary() for n in graph.attention_ops()]
    left = graph.find("Softmax")
    assert len(left) == unlifted
    explained = {d["node"] for d in graph.diagnostics if d["kind"] == "attention-not-lifted"}
    assert {n.name for n in left} <= explained   # every softmax not lifted says why
    return graph


def _compiled_matches(graph, model, inputs, sites: int) -> None:
    compiled = attncc.compile(graph, inputs, target="cpu")
    assert not [d for d in compiled.diagnostics if d["kind"] == "lowering"]   # nothing fell back to the host
    assert len(compiled.graph.attention_ops()) == sites
    g = compiled.graph
    assert not [n for n in g.find("BatchNorm") if n.inputs[0].producer is not None and len(g.consumers(n.inputs[0])) == 1
                and n.inputs[0].producer.op.op_name == "Convolution"]   # every conv whose only reader is a BN: folded
    _close(compiled(*inputs).numpy(), eager_outputs(model, inputs)[0])


def _small_levit():
    """LeViT: conv stem + BN, Linear+BatchNorm1d, hard-swish, attention with a learned per-head bias."""
    import_timm()
    from timm.models.levit import Levit

    torch.manual_seed(0)
    model = Levit(img_size=32, num_classes=10, embed_dim=(32,), key_dim=8, depth=(1,), num_heads=(2,)).eval()
    return model, (torch.randn(1, 3, 32, 32),)


def test_small_levit_lifts_and_matches_eager():
    model, inputs = _small_levit()
    graph = _imported(model, inputs, 1, 0)
    assert graph.find("BatchNorm")
    _close(run_graph(graph, [inputs[0].numpy()])[0], eager_outputs(model, inputs)[0])
    folded = attncc.optimize(graph, "cpu")
    assert len(folded.attention_ops()) == 1 and len(folded.find("BatchNorm")) < len(graph.find("BatchNorm"))
    _close(run_graph(folded, [inputs[0].numpy()])[0], eager_outputs(model, inputs)[0])


@pytest.mark.slow
def test_small_levit_compiles_for_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    model, inputs = _small_levit()
    _compiled_matches(_imported(model, inputs, 1, 0), model, inputs, 1)


@pytest.mark.slow
@pytest.mark.parametrize("family", list(ZOO))
def test_timm_family(family, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    f = ZOO[family]
    model, inputs = _build(f.model, f.img)
    graph = _imported(model, inputs, f.sites, f.unlifted)
    _close(run_graph(graph, [inputs[0].numpy()])[0], eager_outputs(model, inputs)[0])
    _compiled_matches(graph, model, inputs, f.sites)


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAILS))
def test_timm_family_that_does_not_import_says_why(family):
    name, img, reason = FAILS[family]
    model, inputs = _build(name, img)
    with pytest.raises(Exception, match=reason.split(" is not")[0].replace("(", r"\(")):
        import_torch(model, inputs)


def test_every_family_with_unlifted_softmaxes_or_no_sites_says_why():
    for name, f in ZOO.items():
        assert (f.unlifted == 0 and f.sites > 0) or f.why, name
