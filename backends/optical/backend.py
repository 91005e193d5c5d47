"""The `optical` target: models execute on a simulated free-space 4f accelerator (numpy; no TVM, no torch).

`attncc.compile(model, inputs, target="optical", options={...})`; options in `config.py` / docs/optical.md
(bits, noise, aperture, input_mode, filter_mode, detection, signed_weights, signed_inputs, seed, ...).
The executable's `artifacts["optical_program"]` lists per node where it ran, frames, filter refreshes, I/O
bytes and host work; the cost report prices the same graph on the `optical-4f` catalog entry.
"""
from __future__ import annotations

import json
import os
from typing import Any

from ...ir import Graph, graph_to_json
from ..base import Executable
from .config import config_from_options
from .executor import OpticalExecutor, placement
from .record import CAPABILITIES, DESCRIPTION, DEVICE, NAME


class OpticalBackend:
    """Lowers a graph to an `OpticalExecutor` (the simulated 4f machine plus the numpy host)."""

    name = NAME      # the rest of what the target is: record.py
    description = DESCRIPTION
    hardware = DEVICE
    capabilities = CAPABILITIES

    def lower(self, graph: Graph, options: dict[str, Any]) -> Executable:
        cfg, dev = config_from_options(options)
        notes = [note for n in graph.topological() for note in [placement(n, cfg)[1]] if note]
        executor = OpticalExecutor(graph, cfg, dev, notes)
        return Executable(run=executor, backend=self.name, notes=notes,
                          artifacts={"graph": graph, "optical_program": executor.program, "optical_config": cfg,
                                     "options": dict(options)})

    def export(self, executable: Executable, directory: str) -> list[str]:
        """The graph and the simulator options: `attncc.load` re-creates the same simulated machine."""
        os.makedirs(directory, exist_ok=True)
        graph_path, opt_path = os.path.join(directory, "graph.json"), os.path.join(directory, "optical_options.json")
        with open(graph_path, "w") as f:
            f.write(graph_to_json(executable.artifacts["graph"]))
        with open(opt_path, "w") as f:
            json.dump(executable.artifacts["options"], f, indent=1, default=list)
        return [graph_path, opt_path]

    def load(self, directory: str) -> Executable:
        from ...ir import graph_from_json

        with open(os.path.join(directory, "graph.json")) as f:
            graph = graph_from_json(f.read())
        with open(os.path.join(directory, "optical_options.json")) as f:
            options = json.load(f)
        return self.lower(graph, options)
