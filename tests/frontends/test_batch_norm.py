"""Inference batch norm: torch (`aten._native_batch_norm_legit_no_training`) and ONNX (`BatchNormalization`)
import as the BatchNorm op and match torch / onnxruntime; fold-batch-norm folds it into the preceding
convolution / linear (no BatchNorm left, same outputs); an unfolded one (after an add) runs on the cpu target;
the cost report prices it; training-mode batch norm is refused with the reason."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from onnx_helpers import run_ir, run_ort, single_node_model
from torch_helpers import eager_outputs, import_torch, run_graph

import attncc
from attncc.frontends.onnx_converters import ONNXImportError
from attncc.frontends.torch_import import TorchImportError
from attncc.ir.passes import run_pipeline


def _randomize(bn: torch.nn.modules.batchnorm._BatchNorm) -> None:
    """Running statistics and affine away from the identity, so a dropped or misplaced term shows."""
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        if bn.affine:
            bn.weight.normal_()
            bn.bias.normal_()


class ConvBnNet(torch.nn.Module):
    """conv+BN, depthwise conv (no bias)+BN, a BN after an add (not foldable), LeViT's linear+BN1d over tokens."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
        self.dw, self.bn_dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), torch.nn.BatchNorm2d(8)
        self.bn_add = torch.nn.BatchNorm2d(8, affine=False)
        self.fc, self.bn_fc = torch.nn.Linear(8, 6, bias=False), torch.nn.BatchNorm1d(6)
        for bn in (self.bn, self.bn_dw, self.bn_add, self.bn_fc):
            _randomize(bn)

    def forward(self, x):
        y = self.bn_dw(self.dw(torch.relu(self.bn(self.conv(x)))))
        y = self.bn_add(y + 1.0)
        tokens = y.flatten(2).transpose(1, 2)
        z = self.fc(tokens)
        return self.bn_fc(z.flatten(0, 1)).reshape_as(z)


def _net():
    torch.manual_seed(0)
    return ConvBnNet().eval(), (torch.randn(2, 3, 8, 8),)


def test_torch_batch_norm_imports_and_matches_eager():
    model, inputs = _net()
    graph = import_torch(model, inputs)
    assert len(graph.find("BatchNorm")) == 4
    np.testing.assert_allclose(run_graph(graph, [inputs[0].numpy()])[0], eager_outputs(model, inputs)[0],
                               rtol=1e-4, atol=1e-5)


def test_fold_batch_norm_leaves_only_the_unfoldable_one_and_matches():
    model, inputs = _net()
    graph = import_torch(model, inputs)
    folded = run_pipeline(graph.copy(), "canonicalize,constant-fold,fold-batch-norm,dce")
    folded.verify()
    left = folded.find("BatchNorm")
    assert len(left) == 1 and left[0].inputs[0].producer.op.op_name == "Binary"   # the one after the add
    np.testing.assert_allclose(run_graph(folded, [inputs[0].numpy()])[0], eager_outputs(model, inputs)[0],
                               rtol=1e-4, atol=1e-5)


def test_fold_batch_norm_removes_every_norm_after_a_conv():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3, stride=2), torch.nn.BatchNorm2d(6), torch.nn.ReLU())
    _randomize(model[1])
    model.eval()
    x = torch.randn(1, 4, 9, 9)
    folded = attncc.optimize(import_torch(model, (x,)), "cpu")
    assert not folded.find("BatchNorm")
    assert len(folded.find("Convolution")) == 1
    np.testing.assert_allclose(run_graph(folded, [x.numpy()])[0], eager_outputs(model, (x,))[0], rtol=1e-4, atol=1e-5)


def test_cpu_build_with_folded_and_unfolded_batch_norm_matches_eager(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    model, inputs = _net()
    compiled = attncc.compile(model, inputs, target="cpu")
    assert len(compiled.graph.find("BatchNorm")) == 1            # the unfoldable one runs as a kernel
    assert not [d for d in compiled.diagnostics if d["kind"] == "lowering"]
    np.testing.assert_allclose(compiled(*inputs).numpy(), eager_outputs(model, inputs)[0], rtol=1e-4, atol=1e-5)


def test_batch_norm_is_priced_per_element():
    model, inputs = _net()
    graph = import_torch(model, inputs)
    report = attncc.analyze(graph, hardware="host-cpu", per_op=True)
    rows = [r for r in report.rows if r.kind == "BatchNorm"]
    assert len(rows) == 4
    x = graph.find("BatchNorm")[0].inputs[0]
    first = next(r for r in rows if r.name == graph.find("BatchNorm")[0].name)
    assert first.cost.vector_flops == 7 * int(np.prod(x.shape))   # the kernel's per-element expression
    assert all(r.cost.time_s > 0 for r in rows)


def test_training_mode_batch_norm_is_refused():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4)).train()
    with pytest.raises(TorchImportError, match="eval"):
        import_torch(model, (torch.randn(2, 3, 4, 4),))


@pytest.mark.parametrize("shape", [(2, 5, 4, 3), (3, 5), (2, 5, 7)])
def test_onnx_batch_normalization_matches_onnxruntime(shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    c = shape[1]
    inits = {"scale": rng.standard_normal(c).astype(np.float32), "b": rng.standard_normal(c).astype(np.float32),
             "mean": rng.standard_normal(c).astype(np.float32),
             "var": rng.uniform(0.5, 2.0, c).astype(np.float32)}
    model = single_node_model("BatchNormalization", {"x": x}, ["y"], initializers=inits,
                              input_names=["x", "scale", "b", "mean", "var"], epsilon=1e-3)
    (got,), g = run_ir(model, {"x": x})
    assert len(g.find("BatchNorm")) == 1
    np.testing.assert_allclose(got, run_ort(model, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_onnx_training_mode_batch_normalization_is_refused():
    x = np.zeros((2, 3, 4), np.float32)
    inits = {k: np.ones(3, np.float32) for k in ("scale", "b", "mean", "var")}
    model = single_node_model("BatchNormalization", {"x": x}, ["y"], initializers=inits,
                              input_names=["x", "scale", "b", "mean", "var"], training_mode=1)
    with pytest.raises(ONNXImportError, match="training_mode"):
        run_ir(model, {"x": x})


class AddBn(torch.nn.Module):
    """A BatchNorm that nothing can fold (after an add): it runs as its own per-channel kernel."""

    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm2d(4)
        _randomize(self.bn)

    def forward(self, x):
        return torch.relu(self.bn(x + 1.0))


@pytest.mark.parametrize("target", ["mobile-gpu", "optical"])
def test_unfolded_batch_norm_runs_on_other_targets(target, tmp_path, monkeypatch):
    """mobile-gpu: generated OpenCL run on PoCL; optical: the host part of the simulated machine (no optical op
    here, so the result is exact)."""
    if target == "mobile-gpu":
        from attncc.backends.mobile.gpu.spec import opencl_problem

        if opencl_problem() is not None:
            pytest.skip(str(opencl_problem()))
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model, x = AddBn().eval(), torch.randn(2, 4, 5, 3)
    compiled = attncc.compile(model, (x,), target=target)
    assert len(compiled.graph.find("BatchNorm")) == 1
    got = compiled(x)
    got = got[0] if isinstance(got, (list, tuple)) else got
    np.testing.assert_allclose(np.asarray(got), eager_outputs(model, (x,))[0], rtol=1e-4, atol=1e-5)
