"""`attncc targets` says per target whether this machine can build and run it, naming the missing piece.

The machine is faked (PATH lookups, device nodes, the OpenCL probe, the sysroot), so each case can fail."""
from __future__ import annotations

import pytest

from attncc.backends import availability
from attncc.cli import main as cli_main


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A configurable fake machine: `have` is the set of executables on PATH; flags for GPU and OpenCL; the
    aarch64 sysroot is a real temp folder (`make_sysroot()` fills it)."""
    state = {"have": set(), "gpu": False, "opencl": None}
    import attncc.backends.cuda.capabilities as cuda_caps
    import attncc.backends.cuda.nvcc as nvcc
    import attncc.backends.mobile.cpu.emulate as emulate

    def which(name, *a, **k):
        return f"/usr/bin/{name}" if name in state["have"] else None

    for mod in (availability, emulate):
        monkeypatch.setattr(mod.shutil, "which", which)
    monkeypatch.setattr(nvcc, "find_nvcc", lambda: which("nvcc"))
    root = tmp_path / "arm64root"
    monkeypatch.setenv("ATTNCC_ARM64_ROOT", str(root))
    monkeypatch.delenv("ATTNCC_AARCH64_CC", raising=False)
    monkeypatch.setattr(cuda_caps, "cuda_device_present", lambda: state["gpu"])
    monkeypatch.setattr(availability, "_opencl_devices",
                        lambda: (None, "no OpenCL device that builds kernels (no OpenCL device); apt-get install "
                                       "pocl-opencl-icd gives a CPU device") if state["opencl"] is None
                        else (state["opencl"], None))

    def make_sysroot():
        (root / "usr" / "bin").mkdir(parents=True)
        (root / "usr" / "bin" / "python3.11").write_text("")
        (root / "usr" / "lib" / "python3" / "dist-packages" / "tvm").mkdir(parents=True)
    state["make_sysroot"] = make_sysroot
    return state


def test_bare_machine_names_each_missing_piece(machine):
    build, run = availability.target_needs("mobile-cpu")
    assert not build.ok and "aarch64-linux-gnu-gcc" in build.detail and "gcc-aarch64-linux-gnu" in build.detail
    assert not run.ok and "qemu-aarch64-static" in run.detail and "RPC" in run.detail
    build, run = availability.target_needs("cuda")
    assert not build.ok and "nvcc" in build.detail
    assert not run.ok and "no CUDA GPU" in run.detail
    build, run = availability.target_needs("mobile-gpu")
    assert build.ok and not run.ok and "pocl-opencl-icd" in run.detail
    for name in ("cpu", "reference", "optical"):
        assert all(n.ok for n in availability.target_needs(name))


def test_tools_present_turn_each_side_on(machine):
    machine["have"] |= {"aarch64-linux-gnu-gcc", "nvcc", "qemu-aarch64-static"}
    machine["gpu"], machine["opencl"] = True, "pthread-AMD EPYC"
    assert availability.target_needs("mobile-cpu")[0].ok
    # qemu alone is not enough: the aarch64 Python + TVM sysroot must be there too
    run = availability.target_needs("mobile-cpu")[1]
    assert not run.ok and "arm64_sysroot.sh" in run.detail
    machine["make_sysroot"]()
    assert availability.target_needs("mobile-cpu")[1].ok
    build, run = availability.target_needs("cuda")
    assert build.ok and "nvcc" in build.detail and run.ok
    assert availability.target_needs("mobile-gpu")[1].ok


def test_cli_prints_build_and_run_per_target(machine, capsys):
    machine["have"] |= {"nvcc"}
    assert cli_main(["targets"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:3] for line in out.splitlines() if line and not line.startswith(" ")}
    assert rows["cuda"] == ["yes", "NO"] and rows["mobile-cpu"] == ["NO", "NO"] and rows["cpu"] == ["yes", "yes"]
    assert "missing: aarch64-linux-gnu-gcc is missing" in out and "missing: no CUDA GPU here" in out
