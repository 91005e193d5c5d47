"""Issue 22, item 1: every declared dim range is enforced at every entry point (the compiled model, attncc.load,
the exported runtime, the RPC path): out of range is an InputError naming the input, the dim, its range and how
to declare a wider one; never a silent out-of-bounds read (past SEQ_MAX the block's RoPE table has no rows)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import attncc
from attncc.errors import InputError

from .range_models import HIDDEN, SEQ_MAX, SEQ_MIN, rope_block
from .trust_models import attention_graph

OUTSIDE = [(SEQ_MAX + 1, rf"4 <= seq <= 64\).*torch.export.Dim\('seq', min=4, max=128\)"),
           (SEQ_MIN - 1, rf"4 <= seq <= 64\).*torch.export.Dim\('seq', min=3, max=64\)")]


def x_of(seq: int, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(seq).standard_normal((1, seq, HIDDEN)).astype(dtype)


def torch_block(x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return rope_block()[0](torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("seq, message", OUTSIDE)
def test_compiled_model_refuses_a_length_outside_the_declared_range(seq, message):
    _, cm, _ = rope_block()
    with pytest.raises(InputError, match=r"input 'x' dim 1 \(seq\) is %d, outside .*\(" % seq + message):
        cm(torch.from_numpy(x_of(seq)))
    with pytest.raises(InputError, match="outside the range"):
        cm(x_of(seq))   # numpy in: the same check


@pytest.mark.parametrize("seq, message", OUTSIDE)
def test_loaded_model_refuses_a_length_outside_the_declared_range(seq, message):
    loaded = attncc.load(rope_block()[2])
    with pytest.raises(InputError, match=r"input 'x' dim 1 \(seq\) is %d, outside .*\(" % seq + message):
        loaded(x_of(seq))
    np.testing.assert_allclose(loaded(x_of(SEQ_MAX)), torch_block(x_of(SEQ_MAX)), rtol=1e-4, atol=1e-4)


def test_exported_runtime_refuses_a_length_outside_the_declared_range(tmp_path):
    """run.py (TVM runtime + numpy; no attncc, no torch): one line on stderr, exit status 2, nothing run."""
    folder = rope_block()[2]
    for seq, message in OUTSIDE[:1]:   # below the minimum: the same check (attncc_checks.py), in the RPC test
        np.savez(tmp_path / "x.npz", x_of(seq))
        done = subprocess.run([sys.executable, os.path.join(folder, "run.py"), "--inputs", str(tmp_path / "x.npz")],
                              capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
        assert done.returncode == 2, done.stderr[-2000:]
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"run.py: error: input 'x' dim 1 (seq) is {seq}, outside the range" in done.stderr


def test_rpc_path_refuses_a_length_outside_the_declared_range():
    """The RPC runner through TVM's in-process RPC session (the same client code as a remote server)."""
    from tvm import rpc

    from attncc.backends.mobile.cpu.rpc import RemoteModel

    model = RemoteModel(rope_block()[2], rpc.LocalSession())
    for seq, message in OUTSIDE:
        with pytest.raises(TypeError, match=r"input 'x' dim 1 \(seq\) is %d, outside .*\(" % seq + message):
            model.run([x_of(seq)])
    np.testing.assert_allclose(model.run([x_of(SEQ_MIN)])[0], torch_block(x_of(SEQ_MIN)), rtol=1e-4, atol=1e-4)


@settings(max_examples=int(os.environ.get("ATTNCC_FUZZ_EXAMPLES", "8")), deadline=None, derandomize=True)
@given(seq=st.one_of(st.sampled_from([SEQ_MIN - 2, SEQ_MIN - 1, SEQ_MIN, SEQ_MIN + 1, SEQ_MAX - 1, SEQ_MAX,
                                      SEQ_MAX + 1, SEQ_MAX + 2, 2 * SEQ_MAX]), st.integers(1, 3 * SEQ_MAX)))
def test_fuzz_lengths_around_every_bound_match_torch_or_raise(seq):
    _, cm, _ = rope_block()
    x = x_of(seq)
    if SEQ_MIN <= seq <= SEQ_MAX:
        np.testing.assert_allclose(cm(x), torch_block(x), rtol=1e-4, atol=1e-4)
    else:
        with pytest.raises(InputError, match=rf"input 'x' dim 1 \(seq\) is {seq}, outside the range"):
            cm(x)


def test_inputs_sharing_a_dim_must_agree():
    cm = attncc.compile(attention_graph(), target="reference", passes="dce")
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, h, s, 8)).astype(np.float32) for h, s in ((2, 4), (1, 5), (1, 4)))
    with pytest.raises(InputError, match=r"input 'k' dim 2 \(seq\) is 5 but input 'q' dim 2 \(seq\) is 4"):
        cm(q, k, v)
