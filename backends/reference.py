"""The `reference` target: the IR interpreter as an executor (numpy; no code generation)."""
from __future__ import annotations

import os
from typing import Any

from ..ir import Graph, graph_to_json, run_graph
from .base import Capabilities, Executable


NAME = "reference"
DESCRIPTION = "numpy reference interpreter (exact float64 math, slow; the numerics oracle)"
DEVICE = "host-cpu"   # reports of a reference build price the ops on the host, op by op (no kernels)
CAPABILITIES = Capabilities(dtypes=("float32", "float16", "bfloat16", "float64"))


class ReferenceBackend:
    """Runs graphs with the numpy reference interpreter; the oracle for every other backend."""

    name = NAME      # the rest of what the target is: reference_record below
    description = DESCRIPTION
    hardware = DEVICE
    capabilities = CAPABILITIES

    def lower(self, graph: Graph, options: dict[str, Any]) -> Executable:
        g = graph
        return Executable(run=lambda inputs: run_graph(g, list(inputs)), backend=self.name,
                          artifacts={"graph": graph})

    def export(self, executable: Executable, directory: str) -> list[str]:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "graph.json")
        with open(path, "w") as f:
            f.write(graph_to_json(executable.artifacts["graph"]))
        return [path]


def reference_record(options=None):
    """The `reference` Target: the interpreter, priced as the host, with the lifting-only pipeline."""
    from ..cost_models.target import Options, Target
    from ..ir.passes.pipelines import REFERENCE

    return Target(name=NAME, description=DESCRIPTION, backend="attncc.backends.reference:ReferenceBackend",
                  options=Options.parse(NAME, options), tvm_target={}, capabilities=CAPABILITIES, device=DEVICE,
                  parallel_units=1, pipeline=REFERENCE, devices=())
