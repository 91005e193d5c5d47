"""Every test model and variant generates CUDA and compiles with nvcc for sm_80 and sm_90a (slow: ~100 builds).

Per build: the export holds a fatbin with an ELF for the arch and the CUDA source; no kernel fell back to the
numpy reference. Numerics run on a GPU (benchmarks/gpu_check.py) and, for the flash kernel, on PoCL
(test_cuda_flash_pocl.py)."""
from __future__ import annotations

import pytest

import attncc

from cpu_graphs import rng_arrays
from sweep_cases import BFLOAT16, sweep_cases
from test_cuda_target import NVCC

CASES = sweep_cases(BFLOAT16)


@NVCC
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("name,model,extra", CASES, ids=[c[0] for c in CASES])
def test_generates_and_compiles(tmp_path, name, model, extra, arch):
    from attncc.backends.cuda.nvcc import fatbin_entries

    if isinstance(model, attncc.ir.Graph):
        cm = attncc.compile(model, target="cuda", options={"arch": arch, "cache": False})
        if any(isinstance(d, str) for v in model.inputs for d in v.shape):   # symbolic dims build at the first call
            with pytest.raises(RuntimeError, match="no CUDA device is present"):
                cm(*(extra if isinstance(extra, list) else rng_arrays(model, shapes=extra)))
    else:
        cm = attncc.compile(model, extra, target="cuda", options={"arch": arch, "cache": False})
    notes = cm.executable.notes
    host_only = "linear-delta" in name or "gated_delta" in name   # delta rules: loud host fallback, no kernel
    assert not [n for n in notes if "numpy reference" in n and not host_only], notes
    assert not host_only or [n for n in notes if "numpy reference" in n], notes
    cm.export(str(tmp_path))
    fatbins = sorted((tmp_path / "cuda").glob("kernels_*.fatbin"))
    assert fatbins or host_only, f"{name}: no kernels compiled"
    for fb in fatbins:
        elfs = [e["arch"] for e in fatbin_entries(fb.read_bytes()) if e["kind"] == "elf"]
        assert elfs == [int(arch[3:5])], (name, elfs)
        assert fb.with_suffix(".cu").exists()
