"""The Python API on bad input: wrong dtypes/shapes, broken export folders, unknown passes, lowering fallbacks."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import attncc
import attncc.backends
from attncc import pipelines
from attncc.backends.base import Executable
from attncc.backends.core.notes import FALLBACK, REJECTION, TILE, LoweringNote
from attncc.compiled import CompiledModel, fallback_notes
from attncc.errors import ArtifactError, FallbackError, FallbackWarning, InputError
from attncc.ir.passes import PipelineError

from .trust_models import attention_graph, relu_onnx


def qkv(dtype=np.float32, batch=1, seq=4):
    rng = np.random.default_rng(0)
    return [rng.standard_normal((batch, h, seq, 8)).astype(dtype) for h in (2, 1, 1)]


# ---- item 7: dtype and static-shape checks at the call boundary ---------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.float16])
def test_wrong_numpy_dtype_is_rejected_naming_input_and_dtypes(dtype):
    cm = attncc.compile(attention_graph(), target="reference", passes="dce")
    q, k, v = qkv()
    with pytest.raises(InputError, match=f"input 'k' is {np.dtype(dtype).name} but the model expects float32"):
        cm(q, k.astype(dtype), v)


def test_wrong_torch_dtype_is_rejected_like_torch_would():
    cm = attncc.compile(attention_graph(), target="reference", passes="dce")
    q, k, v = (torch.from_numpy(a) for a in qkv())
    with pytest.raises(TypeError, match="input 'q' is float64 but the model expects float32"):
        cm(q.double(), k, v)
    assert cm(q, k, v).dtype == torch.float32  # the declared dtype still runs


def test_static_onnx_shape_mismatch_says_how_to_declare_dynamic_dims(tmp_path):
    cm = attncc.compile(relu_onnx(tmp_path / "m.onnx"), target="reference")
    with pytest.raises(InputError, match=r"input 'x' expects float32\[2, 4\], got shape \(3, 4\): dim 0 is static "
                                         r"\(2\).*symbolic dims \(dim_param"):
        cm(np.ones((3, 4), np.float32))


def test_static_torch_shape_mismatch_names_dynamic_shapes_and_it_works():
    class Relu(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x)

    cm = attncc.compile(Relu(), (torch.ones(2, 4),), target="reference")
    with pytest.raises(InputError, match=r"dim 0 is static \(2\).*attncc.compile\(model, example_inputs, "
                                         r"dynamic_shapes=\{'x': \{0: torch.export.Dim\('d0'\)\}\}\)"):
        cm(torch.ones(3, 4))
    dyn = attncc.compile(Relu(), (torch.ones(2, 4),), target="reference",
                         dynamic_shapes={"x": {0: torch.export.Dim("d0")}})
    assert tuple(dyn(-torch.ones(3, 4)).shape) == (3, 4)


# ---- item 6: export into an unwritable folder, truncated export files ---------------------------------
def exported(tmp_path):
    cm = attncc.compile(attention_graph(), target="reference", passes="dce")
    cm(*qkv())
    cm.export(str(tmp_path / "out"))
    return tmp_path / "out"


def test_export_into_an_unwritable_folder_names_it(tmp_path):
    cm = attncc.compile(attention_graph(), target="reference", passes="dce")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ArtifactError, match="cannot export to .*a_file/out"):
        cm.export(str(tmp_path / "a_file" / "out"))
    with pytest.raises(OSError):  # still an OSError for callers that catch those
        cm.export(str(tmp_path / "a_file" / "out"))


@pytest.mark.parametrize("name", ["manifest.json", "graph.json"])
def test_load_a_truncated_export_file_names_it(tmp_path, name):
    out = exported(tmp_path)
    assert attncc.load(str(out)).target == "reference"
    text = (out / name).read_text()
    (out / name).write_text(text[: len(text) // 2])
    with pytest.raises(ArtifactError, match=f"cannot read .*{name}: .*re-export"):
        attncc.load(str(out))


def test_load_a_manifest_without_its_fields_is_named(tmp_path):
    out = exported(tmp_path)
    (out / "manifest.json").write_text("{}")
    with pytest.raises(ArtifactError, match="manifest.json: not an attncc manifest .missing target, pipeline, hardware"):
        attncc.load(str(out))


# ---- item 9: unknown passes; lowering fallbacks warn, strict raises, the report marks them ------------
def test_unknown_pass_names_are_errors_not_skipped(monkeypatch):
    with pytest.raises(PipelineError, match="unknown pass 'fuze-attention'; registered passes: .*fuse-attention"):
        attncc.compile(attention_graph(), target="reference", passes="canonicalize,fuze-attention")
    for target in pipelines.DEFAULT_PIPELINES:
        pipelines.default_pipeline(target)  # every default names registered passes only
    monkeypatch.setitem(pipelines.DEFAULT_PIPELINES, "reference", "canonicalize,not-yet-written,dce")
    with pytest.raises(PipelineError, match="unknown pass 'not-yet-written'"):
        pipelines.default_pipeline("reference")


# the typed notes backends/core/attention.py and groups.py write for their fallbacks (backends/core/notes.py)
REFERENCE_NOTE = LoweringNote("attn", FALLBACK, "node 'attn' (Attention mqa): ran the numpy reference on the host "
                              "because variant features ['alibi'] have no TVM lowering yet", "numpy reference")
GENERIC_NOTE = LoweringNote("attn", FALLBACK, "node 'attn' (Attention mqa): used the generic TE attention because "
                            "head_dim 7 is not tiled", "generic TE attention")
SCHEDULE_NOTE = LoweringNote("mlp_up", FALLBACK, "node 'mlp_up' (Linear): used the generic schedule (TVMError: no "
                             "tile)", "generic schedule")
OTHER_NOTES = ["TVM's thread pool has 1 thread(s) for 2 cores: it was created before attncc could size it",
               LoweringNote("attn", TILE, "node 'attn': tiling {'q_block': 3} rejected by the kernel (bad); default "
                            "blocks used"),
               LoweringNote(None, REJECTION, "shape-generic build not possible (LoweringError: cpu backend: node "
                            "'add_6' (Binary): defining its TVM compute failed); building once per input shape instead"),
               # English that mentions a fallback is not one unless its kind says so
               "node 'x': the generic reference fallback words alone mean nothing"]


def test_fallback_notes_are_recognized_by_node():
    assert fallback_notes([REFERENCE_NOTE, GENERIC_NOTE, SCHEDULE_NOTE] + OTHER_NOTES) == [
        ("attn", "numpy reference", REFERENCE_NOTE), ("attn", "generic TE attention", GENERIC_NOTE),
        ("mlp_up", "generic schedule", SCHEDULE_NOTE)]


REFERENCE_BACKEND = attncc.backends.get_backend("reference")


class NotingBackend:
    """The reference backend, plus a lowering note as a backend writes it for a fallback."""

    def __init__(self, note):
        self.inner, self.note = REFERENCE_BACKEND, note
        self.name, self.hardware = self.inner.name, self.inner.hardware

    def lower(self, graph, options):
        executable = self.inner.lower(graph, options)
        executable.notes.append(self.note)
        return executable


def test_fallbacks_warn_naming_the_node_and_strict_raises(monkeypatch):
    monkeypatch.setattr(attncc.backends, "get_backend", lambda target: NotingBackend(REFERENCE_NOTE))
    with pytest.warns(FallbackWarning, match=r"node 'attn' fell back to numpy reference \(not its tuned kernel\): "
                                             r"node 'attn' \(Attention mqa\): ran the numpy reference"):
        cm = attncc.compile(attention_graph(), target="reference", passes="dce")
    with pytest.raises(FallbackError, match="strict=True: 1 node.* node 'attn' ran as numpy reference"):
        attncc.compile(attention_graph(), target="reference", passes="dce", strict=True)
    cm(*qkv())
    row = next(r for r in cm.report.rows if r.name == "attn")
    assert row.lowering == "numpy reference" and row.to_dict()["lowering"] == "numpy reference"
    text = cm.report.to_text()
    assert "ran as" in text and "runs it as numpy reference, not the tuned kernel priced here" in text


def test_no_warning_without_fallbacks():
    with warnings.catch_warnings():
        warnings.simplefilter("error", FallbackWarning)
        cm = attncc.compile(attention_graph(), target="reference", passes="dce", strict=True)
    cm(*qkv())
    assert "ran as" not in cm.report.to_text()


def test_fallbacks_of_shapes_lowered_at_call_time_warn_then(monkeypatch):
    """Dynamic shapes are lowered on their first call: their fallback notes arrive then."""
    graph = attention_graph()

    def lazily_noting():
        run = REFERENCE_BACKEND.lower(graph, {}).run
        notes: list[str] = []

        def run_and_note(inputs):
            notes.append(GENERIC_NOTE)
            return run(inputs)
        return Executable(run=run_and_note, backend="reference", notes=notes)

    cm = CompiledModel(graph, lazily_noting(), "reference", "dce", "host-cpu")
    cm.check_fallbacks()  # nothing yet
    with pytest.warns(FallbackWarning, match="node 'attn' fell back to generic TE attention"):
        cm(*qkv())
    strict = CompiledModel(graph, lazily_noting(), "reference", "dce", "host-cpu", strict=True)
    with pytest.raises(FallbackError, match="node 'attn' ran as generic TE attention"):
        strict(*qkv())
