"""ONNX files attncc cannot read: errors name the file and what is wrong (issue #15)."""
from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

import attncc
from attncc.errors import ModelFileError
from attncc.frontends.onnx_converters.context import ONNXImportError



def relu_onnx(path, opset: int = 17) -> str:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return str(path)


@pytest.mark.parametrize("content", [bytes(range(256)) * 8, b"hello, not a model\n"])
def test_random_bytes_name_the_file(tmp_path, content):
    path = tmp_path / "random.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=f"{path} is not a valid ONNX model: DecodeError.*corrupt, truncated"):
        attncc.import_model(str(path))


def test_truncated_file_names_the_file(tmp_path):
    path = relu_onnx(tmp_path / "whole.onnx")
    data = open(path, "rb").read()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"{cut} is not a valid ONNX model"):
        attncc.compile(str(cut), target="reference")


def test_empty_file_is_not_a_model(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty.onnx is not an ONNX model: it holds no graph and no opset .0 bytes"):
        attncc.import_model(str(path))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ModelFileError, match="cannot read ONNX file .*nowhere.onnx: No such file"):
        attncc.import_model(str(tmp_path / "nowhere.onnx"))


def test_opset_newer_than_installed_onnx_is_rejected(tmp_path):
    newest = onnx.defs.onnx_opset_version()
    path = relu_onnx(tmp_path / "future.onnx", opset=99)
    with pytest.raises(ONNXImportError, match=f"future.onnx declares ONNX opset 99 for the default domain; the "
                                              f"installed onnx .* supports opsets up to {newest}"):
        attncc.import_model(path)
    with pytest.raises(ONNXImportError, match="model 'relu' declares ONNX opset 99"):
        attncc.import_model(onnx.load(path))
    assert attncc.import_model(relu_onnx(tmp_path / "now.onnx", opset=newest)).inputs  # the newest one imports
