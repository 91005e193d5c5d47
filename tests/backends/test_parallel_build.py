"""Parallel kernel builds (backends/core/host_build.py): forked workers compile shares of a build's kernels,
this process links them. The kernels, hence the outputs, must not depend on the worker count; a kernel TVM
cannot compile in a worker must name its node; a worker that dies leaves its share to this process."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

import attncc
from attncc.backends.core import host_build
from attncc.backends.core.errors import LoweringError
from attncc.backends.core.host_build import ParallelBuildWarning, build_jobs, split_work
from attncc.backends.cpu.plugin import CpuPlugin
from test_kernel_dedupe import Block   # the same two-layer ViT-style block the dedupe tests build


def _model():
    torch.manual_seed(0)
    return nn.Sequential(Block(), Block()).eval(), torch.randn(1, 16, 32)


def _compile(monkeypatch, jobs: int):
    monkeypatch.setenv("ATTNCC_BUILD_JOBS", str(jobs))
    model, x = _model()
    compiled = attncc.compile(model, (x,), target="cpu", options={"cache": False})
    got = compiled(x)
    return np.asarray(got[0] if isinstance(got, (list, tuple)) else got), model(x).detach().numpy()


def test_parallel_build_gives_the_serial_build_bit_for_bit(monkeypatch):
    shares, asked = [], []
    real_split, real_attention = host_build.split_work, CpuPlugin.attention_primfunc
    monkeypatch.setattr(host_build, "split_work", lambda names, jobs: shares.append(real_split(names, jobs)) or shares[-1])
    monkeypatch.setattr(CpuPlugin, "attention_primfunc", lambda self, cfg, t: asked.append(cfg) or real_attention(self, cfg, t))
    serial, want = _compile(monkeypatch, 1)
    parallel, _ = _compile(monkeypatch, 2)
    assert [len(s) for s in shares] == [1, 2]          # the second build really ran in two processes
    assert sorted(sum(shares[1], [])) == sorted(shares[0][0])
    assert len(asked) == 2                             # two identical layers: one attention kernel per build
    np.testing.assert_allclose(serial, want, rtol=1e-4, atol=1e-4)
    assert serial.tobytes() == parallel.tobytes()


def test_kernel_failing_in_a_worker_names_its_node(monkeypatch):
    parent, real = os.getpid(), host_build._compile
    victim: list[str] = []

    def fails_in_worker(names, funcs):
        if os.getpid() != parent:
            victim[:] = victim or [names[0]]   # the worker's first kernel (this list is the worker's copy)
            if victim[0] in names:
                raise RuntimeError("TVMError: injected codegen failure")
        return real(names, funcs)

    monkeypatch.setattr(host_build, "_compile", fails_in_worker)
    with pytest.raises(LoweringError) as info:
        _compile(monkeypatch, 2)
    message = str(info.value)
    assert "injected codegen failure" in message and info.value.node != "<module>"
    kernel = message.split("its kernel '", 1)[1].split("'", 1)[0]
    safe = "".join(c if c.isalnum() else "_" for c in info.value.node)[:40]
    assert kernel.startswith("k") and f"_{safe}" in kernel, (kernel, info.value.node)   # k<n>_<node>[_<part>]


def test_dead_worker_falls_back_to_this_process_with_a_warning(monkeypatch):
    parent, real = os.getpid(), host_build._compile_share

    def dies_in_worker(i):
        if os.getpid() != parent:
            os._exit(3)
        return real(i)

    monkeypatch.setattr(host_build, "_compile_share", dies_in_worker)
    with pytest.warns(ParallelBuildWarning, match="exited with status 3"):
        got, want = _compile(monkeypatch, 2)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_build_jobs_follows_the_environment_affinity_and_load(monkeypatch):
    monkeypatch.setenv("ATTNCC_BUILD_JOBS", "3")
    assert build_jobs() == 3
    monkeypatch.delenv("ATTNCC_BUILD_JOBS")
    monkeypatch.setattr(os, "getloadavg", lambda: (0.5, 0.5, 0.5))    # idle but for this compile
    assert build_jobs() == len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (os.cpu_count() + 3.0,) * 3)   # every CPU busy elsewhere
    assert build_jobs() == 1
    monkeypatch.setenv("ATTNCC_BUILD_JOBS", "zero")
    with pytest.raises(ValueError, match="ATTNCC_BUILD_JOBS"):
        build_jobs()


def test_split_work_spreads_attention_kernels_first():
    names = ["k1_norm", "k2_attention", "k3_proj", "k4_attention", "k5_add"]
    shares = split_work(names, 2)
    assert shares == split_work(names, 2)              # deterministic
    assert [sum(n.endswith("_attention") for n in s) for s in shares] == [1, 1]
    assert sorted(sum(shares, [])) == sorted(names)
    assert split_work(names, 9) == [[n] for n in ["k2_attention", "k4_attention", "k1_norm", "k3_proj", "k5_add"]]
