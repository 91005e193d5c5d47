"""Python overhead per call of a one-op model (x + y on 16 floats): the runner's cost, not the kernel's.

    python benchmarks/overhead.py

Prints microseconds per call through attncc.compile's CompiledModel (numpy or torch in/out), through the plan
runner alone (TVM tensors in/out, what an exported folder's attncc_runtime does), and for a static and
a shape-generic build.
"""
from __future__ import annotations

import time

import numpy as np

import attncc
from attncc import ir


def one_op(dim) -> ir.Graph:
    g = ir.Graph("add")
    x = g.add_input("x", "float32", (dim, 16))
    y = g.add_input("y", "float32", (dim, 16))
    g.set_outputs([g.add1(ir.Binary("add"), [x, y], name="sum")])
    return g


def per_call_us(fn, seconds: float = 1.0) -> float:
    for _ in range(100):
        fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            fn()
        n += 100
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    xs = [np.ones((1, 16), np.float32), np.ones((1, 16), np.float32)]
    for label, dim in (("static", 1), ("shape-generic", "n")):
        cm = attncc.compile(one_op(dim), target="cpu")
        cm(*xs)
        runner = next(iter(cm.executable.artifacts["program"].runners.values()))
        import tvm

        tx = [tvm.runtime.tensor(a) for a in xs]
        import torch

        ts = [torch.from_numpy(a).clone() for a in xs]   # torch allocations are 64-byte aligned
        print(f"{label:14s}: CompiledModel numpy {per_call_us(lambda: cm(*xs)):6.1f} us/call, "
              f"torch {per_call_us(lambda: cm(*ts)):6.1f} us/call, "
              f"executable {per_call_us(lambda: cm.executable(xs)):6.1f} us/call, "
              f"plan runner (TVM tensors) {per_call_us(lambda: runner.run(tx)):6.1f} us/call")


if __name__ == "__main__":
    main()
