"""Running exported folders through TVM's RPC (attncc.backends.mobile.cpu.rpc) against a server on loopback.

Default: a host-cpu build (this machine is x86) served by TVM's own `rpc.Server`; outputs vs the IR
interpreter and each kernel timed on the server by time_evaluator (timings only checked to exist: the
numbers are never asserted). Slow: a mobile-cpu (aarch64) build served by the aarch64 TVM runtime's
`tvm.exec.rpc_server` under qemu-aarch64 (the sysroot of tests/tools/arm64_sysroot.sh).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

import attncc
from attncc.ir.interpreter import run_graph

try:
    from .cpu_graphs import attention_graph, rng_arrays
except ImportError:  # tests/backends is not a package: pytest put it on sys.path
    from cpu_graphs import attention_graph, rng_arrays

RTOL, ATOL = 1e-4, 1e-5


def _graph():
    # a bool mask broadcast over heads reaches the kernel through a view: views must work on remote tensors
    return attention_graph(hq=4, hkv=2, sq=16, skv=16, d=16, causal=True, mask="bool")


def _check(folder: str, graph, host: str, port: int, timed: bool) -> None:
    from attncc.backends.mobile.cpu.rpc import RemoteModel, connect

    inputs = rng_arrays(graph, seed=3)
    want = [np.asarray(w) for w in run_graph(graph, inputs)]
    model = RemoteModel(folder, connect(host, port))
    got = model.run(inputs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)
    assert not np.array_equal(got[0], np.zeros_like(got[0]))
    if timed:
        rows = model.time(inputs, number=2, repeat=1)
        steps = [s for s in model._entries[0][2].steps if s.get("func")]
        assert [r["func"] for r in rows] == [s["func"] for s in steps]   # every kernel call, in plan order
        assert all(r["median_s"] > 0 for r in rows)


@pytest.mark.slow   # ~8 s; .ci/run runs it with the standalone-export check
def test_host_cpu_build_runs_through_a_loopback_rpc_server(tmp_path, capsys):
    from attncc.backends.mobile.cpu.rpc import main

    graph = _graph()
    cm = attncc.compile(graph, target="cpu", options={"cache": False})
    cm.export(str(tmp_path / "out"))
    with _rpc_server([sys.executable], {**os.environ, "HOME": str(tmp_path)}, timeout=300) as port:
        _check(str(tmp_path / "out"), graph, "127.0.0.1", port, timed=True)
        # the command line: random inputs of the build's shapes, outputs listed, kernels timed on the server
        assert main([str(tmp_path / "out"), "--port", str(port), "--time", "--number", "1", "--repeat", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"{graph.outputs[0].name}: (2, 4, 16, 16) float32" in printed and "kernels total (on the device)" in printed


def test_a_folder_with_host_reference_steps_is_refused(tmp_path):
    from attncc.backends.mobile.cpu.rpc import RemoteError, RemoteModel

    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "plans.json").write_text('{"inputs": [], "outputs": [], "plans": [{"shapes": "generic", '
                                       '"plan": "p.json", "library": null, "constants": "c.npz"}]}')
    (folder / "p.json").write_text('{"values": {}, "steps": [{"kind": "reference", "node": "n1"}]}')
    with pytest.raises(RemoteError, match="n1"):
        RemoteModel(str(folder), _NoSession(), verify=False)   # no manifest: this folder is hand-written


class _NoSession:
    def device(self, name):
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# tvm.exec.rpc_server runs TVM's server in a worker it starts by exec'ing sys.executable: an aarch64 binary,
# which the kernel cannot exec here without a binfmt_misc entry for qemu. So under qemu the same server code
# (tvm.rpc.server.PopenRPCServerState: bind, listen thread, a forked process per session) runs in the
# emulated interpreter itself; on a real board `python -m tvm.exec.rpc_server` is what runs.
_SERVE_IN_PROCESS = """
import sys, time
from tvm.rpc.server import PopenRPCServerState
PopenRPCServerState("127.0.0.1", int(sys.argv[1]), int(sys.argv[1]) + 1)
while True:
    time.sleep(3600)
"""


@contextlib.contextmanager
def _rpc_server(python: list[str], env: dict, timeout: float, in_process: bool = False):
    """TVM's own server (`python -m tvm.exec.rpc_server`) on a free loopback port, in its own process group
    (it starts a worker): yields the port once it accepts connections; the group is killed afterwards.
    in_process: TVM's server state object in the launched interpreter itself (see _SERVE_IN_PROCESS)."""
    port = _free_port()
    server_args = (["-c", _SERVE_IN_PROCESS, str(port)] if in_process else
                   ["-m", "tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(port), "--port-end", str(port + 1)])
    log = tempfile.TemporaryFile("w+")   # a file, not a pipe: a chatty server never blocks on a full pipe
    server = subprocess.Popen(python + server_args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + timeout
        while True:
            if server.poll() is not None:
                log.seek(0)
                pytest.fail(f"the RPC server exited: {log.read()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.time() > deadline:
                pytest.fail(f"the RPC server did not listen on port {port} within {timeout:.0f} s")
            time.sleep(0.5)
        yield port
    finally:
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:   # it already exited
            pass
        server.wait()
        log.close()


def _qemu_reason():
    from attncc.backends.mobile.cpu.emulate import sysroot, unavailable

    if shutil.which("aarch64-linux-gnu-gcc") is None:
        return "aarch64-linux-gnu-gcc not installed (Debian gcc-aarch64-linux-gnu)"
    why = unavailable()
    if why is None and not os.path.isdir(os.path.join(sysroot(), "usr/lib/python3/dist-packages/cloudpickle")):
        why = "the arm64 sysroot predates TVM's RPC server needs (cloudpickle): rerun tests/tools/arm64_sysroot.sh"
    return why


@pytest.mark.slow
@pytest.mark.skipif(_qemu_reason() is not None, reason=f"aarch64 RPC server not available: {_qemu_reason()}")
def test_mobile_cpu_build_runs_on_an_aarch64_rpc_server_under_qemu(tmp_path):
    from attncc.backends.mobile.cpu.emulate import python_path, sysroot

    graph = _graph()
    cm = attncc.compile(graph, target="mobile-cpu", options={"cache": False})
    cm.export(str(tmp_path / "out"))
    env = {"PATH": "/usr/bin:/bin", "TVM_USE_RUNTIME_LIB": "1", "PYTHONNOUSERSITE": "1", "HOME": str(tmp_path)}
    # an emulated interpreter importing TVM takes tens of seconds
    with _rpc_server(["qemu-aarch64-static", "-L", sysroot(), python_path()], env, timeout=900,
                     in_process=True) as port:
        _check(str(tmp_path / "out"), graph, "127.0.0.1", port, timed=False)
