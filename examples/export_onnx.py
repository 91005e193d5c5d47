"""Write the bundled Llama-style block (examples/models.py) as an ONNX file (plus its .onnx.data weights).

    python examples/export_onnx.py block.onnx      # static shapes: x float32[2, 128, 256]

torch.onnx's dynamo exporter; the legacy one cannot export SDPA with enable_gqa=True.
"""
from __future__ import annotations

import sys

import torch

from models import llama_block


def main(path: str = "block.onnx") -> None:
    model, (x,) = llama_block()
    torch.onnx.export(model, (x,), path, input_names=["x"], output_names=["y"], dynamo=True, verbose=False)
    print(f"wrote {path}: input x float32[2, 128, 256]")


if __name__ == "__main__":
    main(*sys.argv[1:])
