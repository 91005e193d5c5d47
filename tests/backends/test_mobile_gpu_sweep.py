"""Every test model and variant compiles for mobile-gpu (OpenCL C + launch table exported), and where an OpenCL
device builds kernels here (PoCL), runs and matches the interpreter (fp32 rtol 1e-4). Slow: ~60 builds.

Cases: the same list as the cuda sweep (cpu_graphs attention/mlp/layout/llama graphs, every variant case of
tests/variants/decompose_cases.py, the examples' Llama block and TinyLlama prefill/decode)."""
from __future__ import annotations

import numpy as np
import pytest

import attncc
from attncc.ir import run_graph

from cpu_graphs import rng_arrays
from sweep_cases import BROADCAST_MASKS, sweep_cases
from test_mobile_gpu import opencl_problem

RTOL, ATOL = 1e-4, 1e-4
CASES = sweep_cases(BROADCAST_MASKS)


@pytest.mark.slow
@pytest.mark.parametrize("name,model,extra", CASES, ids=[c[0] for c in CASES])
def test_compiles_and_matches_the_interpreter(tmp_path, name, model, extra):
    if isinstance(model, attncc.ir.Graph):
        graph = model
        arrays = extra if isinstance(extra, list) else rng_arrays(model, shapes=extra)
        cm = attncc.compile(model, target="mobile-gpu", options={"cache": False})
    else:
        cm = attncc.compile(model, extra, target="mobile-gpu", options={"cache": False})
        graph, arrays = cm.graph, [x.numpy() for x in extra]
    program = cm.executable.artifacts["program"]
    if any(isinstance(d, str) for v in graph.inputs for d in v.shape):   # per-shape: built at the first call
        program.runner_for(tuple(tuple(np.shape(a)) for a in arrays))
    notes = cm.executable.notes
    host = [n for n in notes if "numpy reference" in n]
    # the delta-rule recurrences have no TVM lowering on any target: a loud host fallback (no kernels)
    assert not host or "delta" in name, notes
    cm.export(str(tmp_path))
    sources = sorted(tmp_path.glob("**/kernels_*.cl"))
    assert (sources or host) and all("__kernel void" in p.read_text() for p in sources), name
    fp16 = any("half" in p.read_text() for p in sources)
    if opencl_problem() is not None or fp16:   # fp16: PoCL has no cl_khr_fp16 (compiled above, not run)
        return
    want = run_graph(graph, arrays)
    got = cm(*arrays)
    got = got if isinstance(got, (list, tuple)) else [got]
    for i, (a, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(w, np.float64), rtol=RTOL, atol=ATOL,
                                   err_msg=f"{name} output {i}")
