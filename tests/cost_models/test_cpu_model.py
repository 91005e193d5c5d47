"""The host-CPU kernel model: kernel classes, executed tiles, bounds, fitted factors and their source."""
import json
from dataclasses import dataclass

import numpy as np
import pytest

from attncc.cost_models import attention_cost, calibrate_host, matmul_cost
from attncc.cost_models.fit import fit_efficiency, percent_errors, spearman, with_efficiency
from attncc.cost_models.hardware import SPEC_DIR, get_hardware, spec_from_dict
from attncc.ir.ops.attention import Tiling
from attncc.ir.ops.attention_spec import AttentionSpec, MaskSpec

CAUSAL = MaskSpec(causal=True, alignment="bottom_right")


@pytest.fixture
def host(monkeypatch, tmp_path):
    """The shipped host-cpu spec (a calibrated spec in the user's cache dir must not leak in)."""
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path))
    return get_hardware("host-cpu")


def test_decode_is_memory_bound_and_large_prefill_compute_bound(host):
    dec = attention_cost(AttentionSpec(8, 8, 64, mask=CAUSAL), 1, 1, 8192, "float32",
                         Tiling(q_block=1, kv_block=256, num_splits=2), host)
    assert dec.details["kernel"] == "attention.decode" and dec.bound == "memory"
    pre = attention_cost(AttentionSpec(16, 16, 128, mask=CAUSAL), 1, 4096, 4096, "float32",
                         Tiling(q_block=64, kv_block=128), host)
    assert pre.details["kernel"] == "attention.prefill" and pre.bound == "compute"
    # decode with no tiling is still priced as the decode kernel (q_len <= 8)
    assert attention_cost(AttentionSpec(8, 8, 64), 1, 1, 4096, "float32", None, host).details["kernel"] == "attention.decode"


def test_causal_prefill_executes_the_visited_blocks_not_the_triangle(host):
    spec = AttentionSpec(1, 1, 64, mask=CAUSAL)
    c = attention_cost(spec, 1, 1024, 1024, "float32", Tiling(q_block=64, kv_block=128), host)
    # query block i (rows 64i..64i+63) visits ceil(64(i+1)/128) key blocks of 128
    visited = sum(-(-64 * (i + 1) // 128) for i in range(16)) * 64 * 128
    assert c.details["executed_pairs_per_head"] == visited
    assert c.executed_flops == pytest.approx(visited * 4 * 64)
    assert c.flops == pytest.approx(1024 * 1025 / 2 * 4 * 64)       # reported FLOPs stay algorithmic
    full = attention_cost(AttentionSpec(1, 1, 64), 1, 1024, 1024, "float32", Tiling(q_block=64, kv_block=128), host)
    assert full.executed_flops == pytest.approx(full.flops) and full.details["masked_pairs_per_head"] == 0


def test_window_skips_blocks_outside_the_window(host):
    win = AttentionSpec(4, 4, 64, mask=MaskSpec(causal=True, window_left=128))
    c = attention_cost(win, 1, 2048, 2048, "float32", Tiling(q_block=64, kv_block=64), host)
    # each 64-row block sees at most 128 + 64 keys: 3 or 4 key blocks of 64 (never all 32)
    assert c.details["executed_pairs_per_head"] <= 32 * 64 * 4 * 64
    assert c.details["masked_pairs_per_head"] > 0


def test_split_kv_decode_counts_splits_and_tasks(host):
    spec = AttentionSpec(32, 8, 128)
    one = attention_cost(spec, 1, 1, 4096, "float32", Tiling(q_block=4, kv_block=256, num_splits=1), host)
    four = attention_cost(spec, 1, 1, 4096, "float32", Tiling(q_block=4, kv_block=256, num_splits=4), host)
    assert (one.parallel_tasks, four.parallel_tasks) == (8, 32)
    assert four.main_bytes > one.main_bytes          # partial outputs written and merged
    odd = attention_cost(AttentionSpec(8, 1, 64), 1, 1, 1024, "float32", Tiling(q_block=8, kv_block=256, num_splits=1), host)
    assert odd.details["parallel_imbalance"] == 2.0  # one task on two cores


def test_matmul_small_m_streams_the_weight_large_m_is_compute_bound(host):
    small = matmul_cost(2, 4096, 4096, 1, "float32", host, Tiling(q_block=2, kv_block=32))
    assert small.bound == "memory"
    assert small.main_bytes == pytest.approx((2 * 4096 + 4096 * 4096 + 2 * 4096) * 4)
    big = matmul_cost(1024, 1024, 1024, 1, "float32", host, Tiling(q_block=8, kv_block=32))
    assert big.bound == "compute"
    assert big.main_bytes == pytest.approx(3 * 1024 * 1024 * 4)   # re-reads stay in L2/L3


def test_shipped_host_spec_has_fitted_factors_with_a_source():
    d = json.loads((SPEC_DIR / "host-cpu.json").read_text())
    eff = d["efficiency"]
    assert eff["source"].startswith("fit by benchmarks/cost_model_accuracy.py")
    assert "load" in eff["source"]
    want = {"attention.prefill": {"compute", "vector"}, "attention.decode": {"compute", "memory"},
            "matmul": {"compute", "memory"}}
    for cls, resources in want.items():
        entry = eff["by_op"][cls]
        for r in resources:
            assert 0.01 <= entry[r] <= (1.5 if r == "memory" else 1.0), (cls, r)
        assert entry["launch_s"] > 0 and entry["cold_launch_s"] == entry["tiny_kernel_s"] > 0   # in a plan / alone
    assert "measured" in d["launch_source"]
    hw = spec_from_dict(d)
    assert hw.efficiency_for("attention.decode", "memory") == eff["by_op"]["attention.decode"]["memory"]
    assert hw.efficiency_for("softmax", "memory") == eff["memory"]            # other ops: spec-wide factor
    assert hw.launch_for("matmul") == eff["by_op"]["matmul"]["launch_s"]


@dataclass
class Sample:
    job: tuple
    measured_s: float
    kind: str


def _synthetic(hw):
    """Kernels 'measured' on a spec with known factors (what a perfect model would see)."""
    jobs = [("attention", AttentionSpec(h, h, d, mask=CAUSAL if c else MaskSpec()), 1, n, n, Tiling(q_block=64, kv_block=128))
            for h, d, n, c in [(8, 64, 1024, True), (4, 128, 512, False), (8, 32, 768, True), (2, 96, 2048, False)]]
    jobs += [("attention", AttentionSpec(h, kv, d), b, 1, n, Tiling(q_block=h // kv, kv_block=256, num_splits=2))
             for b, h, kv, d, n in [(1, 8, 8, 64, 8192), (4, 32, 8, 128, 4096), (1, 32, 1, 128, 8192), (2, 16, 16, 64, 2048)]]
    jobs += [("matmul", m, n, k, Tiling(q_block=min(m, 8), kv_block=32))
             for m, n, k in [(2, 4096, 4096), (1024, 1024, 1024), (8, 4096, 1024), (512, 2048, 512)]]
    true = {"attention.prefill": {"compute": 0.6, "vector": 0.05, "launch_s": 2e-5},
            "attention.decode": {"compute": 0.25, "memory": 0.7, "launch_s": 1e-5},
            "matmul": {"compute": 0.55, "memory": 0.9, "launch_s": 1e-5}}
    truth = with_efficiency(hw, {**hw.efficiency, "by_op": true})
    from attncc.cost_models.fit import predict
    samples = [Sample(j, predict(j, truth).time_s, predict(j, truth).details.get("kernel", "matmul")) for j in jobs]
    return samples, true


def test_fit_recovers_known_factors(host):
    samples, true = _synthetic(host)
    fit = fit_efficiency(samples, host, {k: v["launch_s"] for k, v in true.items()})
    for cls, factors in true.items():
        for r in ("compute", "vector", "memory"):
            if r in fit[cls]:
                assert fit[cls][r] == pytest.approx(factors[r], rel=0.05), (cls, r)
    pred, meas, ape = percent_errors(samples, with_efficiency(host, {"by_op": fit}))
    assert np.median(ape) < 0.02 and spearman(pred, meas) > 0.99


def test_calibrate_host_refits_factors_from_kernel_times(host, tmp_path):
    samples, true = _synthetic(host)
    kernels = {"samples": samples, "launch_s": {"launch": 5e-6, **{k: v["launch_s"] for k, v in true.items()}},
               "loads": [0.5, 0.7], "date": "2026-01-01 00:00"}
    spec = calibrate_host(save=True, quick=True, kernels=kernels)
    saved = json.loads((tmp_path / "host-cpu.json").read_text())
    assert set(saved["efficiency"]["by_op"]) == set(true)
    assert "calibrate_host" in saved["efficiency"]["source"] and "load 0.50-0.70" in saved["efficiency"]["source"]
    assert spec.launch_overhead_s == 5e-6
    assert get_hardware("host-cpu").efficiency == spec.efficiency   # the saved spec is the one used


def test_calibrate_keeps_the_fixed_cost_of_classes_timed_only_as_tiny_kernels(host):
    """The plan's elementwise/row and copy kernels are not fitted, but each class's measured tiny-kernel time
    becomes its launch cost (what the kernel report prices per launch)."""
    from attncc.cost_models.calibrate import fitted_efficiency

    samples, true = _synthetic(host)
    eff = fitted_efficiency(samples, host, {"launch": 5e-6, "elementwise": 3.1e-6, "layout": 2.7e-6,
                                            **{k: v["launch_s"] for k, v in true.items()}}, "test")
    assert eff["by_op"]["elementwise"] == {"launch_s": 3.1e-6, "tiny_kernel_s": 3.1e-6}
    hw = with_efficiency(host, eff)
    assert hw.launch_for("elementwise") == 3.1e-6 and hw.launch_for("layout") == 2.7e-6


def test_tiny_kernels_of_every_launch_class_run():
    pytest.importorskip("tvm")
    from attncc.backends.cpu.kernel_suite import tiny_case

    for kind in ("elementwise", "layout"):
        case = tiny_case(kind)   # checked against numpy inside
        case.run()
        assert case.job[0] == kind


@pytest.mark.slow
def test_shipped_spec_predicts_this_machine(host):
    """Times a third of the benchmark's kernels here and prices them with the shipped spec (no refit)."""
    pytest.importorskip("tvm")
    from attncc.backends.cpu import kernel_suite
    from attncc.calibration import measure_kernels

    res = measure_kernels(kernel_suite, quick=True, rounds=2, reps=3, wait_s=0, log=None)
    pred, meas, ape = percent_errors(res["samples"], host)
    assert spearman(pred, meas) >= 0.9
    assert np.median(ape) <= 0.3, f"median error {np.median(ape):.0%} at load {res['loads']}"


def test_calibrate_host_fp32_peak_is_the_fastest_measured_kernel(host, tmp_path):
    """A faster probe (attncc's TVM matmul) wins over numpy's sgemm; a slower one does not; all are recorded."""
    fast = {"name": "tvm-packed-matmul", "flops": 1e15, "source": "fast probe", "load": 0.5}
    slow = {"name": "slow", "flops": 1e6, "source": "slow probe", "load": 0.5}
    spec = calibrate_host(save=False, quick=True, fp32_probes=[slow, fast])
    assert spec.peak_flops("float32") == 1e15 and "fast probe" in spec.compute_units[0].source
    figures = {f["name"]: f for f in spec.extra["peak_figures"]["float32"]}
    assert set(figures) == {"numpy-sgemm", "slow", "tvm-packed-matmul", "theoretical"}
    assert 1e6 < figures["numpy-sgemm"]["flops"] < 1e15 and figures["theoretical"]["source"]
    only_numpy = calibrate_host(save=False, quick=True, fp32_probes=[slow])
    numpy_fig = next(f for f in only_numpy.extra["peak_figures"]["float32"] if f["name"] == "numpy-sgemm")
    assert only_numpy.peak_flops("float32") == numpy_fig["flops"] and "numpy" in only_numpy.compute_units[0].source


def test_theoretical_fp32_peak_from_cpuinfo(monkeypatch):
    from attncc.cost_models import calibrate as cal

    monkeypatch.setattr(cal.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(cal, "_clock_hz", lambda info: (2.5e9, "test clock"))
    zen4 = {"vendor_id": "AuthenticAMD", "cpu family": "25", "flags": "fma avx2 avx512f"}
    monkeypatch.setattr(cal, "_cpuinfo", lambda: zen4)
    flops, src = cal.theoretical_fp32_peak()
    assert flops == 2 * 16 * 2 * 2.5e9 and "Zen 4" in src and "test clock" in src
    monkeypatch.setattr(cal, "_cpuinfo", lambda: {**zen4, "vendor_id": "GenuineIntel", "cpu family": "6"})
    assert cal.theoretical_fp32_peak()[0] == 2 * 32 * 2 * 2.5e9
    monkeypatch.setattr(cal, "_cpuinfo", lambda: {"flags": "sse2"})
    flops, src = cal.theoretical_fp32_peak()
    assert flops is None and "not derived" in src


def test_shipped_fp32_peak_is_its_best_measured_figure(host):
    """The shipped peak is the fastest measured kernel (else fitted compute factors exceed 1), each figure sourced."""
    figures = host.extra["peak_figures"]["float32"]
    assert all(f["source"] for f in figures)
    measured = [f["flops"] for f in figures if f["name"] != "theoretical"]
    assert host.peak_flops("float32") == max(measured)
    assert "TVM packed matmul" in host.compute_units[0].source


def _row_job(flops: float, vector: float, dram: float, kind: str, hw) -> tuple:
    """A plan kernel as its report row hands it to the fit: counts only, priced later."""
    from attncc.cost_models.pricing import OpCost

    c = OpCost(flops=flops, vector_flops=vector, main_level=hw.main_memory.name)
    c.bytes[hw.main_memory.name] = dram
    return ("row", c, kind)


def test_fit_recovers_in_plan_and_cold_fixed_costs(host):
    """Standalone suite kernels pay the class's cold fixed cost (the measured tiny kernel), plan kernels the fitted
    in-plan one; both come back from kernels 'measured' on a spec with known factors."""
    from attncc.cost_models.fit import predict

    samples, true = _synthetic(host)
    true["matmul"]["cold_launch_s"] = true["matmul"]["launch_s"]
    true["matmul"]["launch_s"] = 2e-6
    true["elementwise"] = {"vector": 0.3, "memory": 0.9, "launch_s": 3e-6, "cold_launch_s": 8e-6}
    jobs = [_row_job(2 * m * n * k, 0, 4 * (m * k + k * n + m * n), "matmul", host)
            for m, n, k in [(1, 512, 512), (64, 256, 768), (256, 1024, 512), (8, 2048, 2048)]]
    jobs += [_row_job(0, v * n, 8 * n, "elementwise", host)
             for v, n in [(1, 512), (5, 65536), (100, 98304), (8, 1 << 20), (1, 1 << 22)]]
    truth = with_efficiency(host, {**host.efficiency, "by_op": true})
    samples = [Sample(s.job, predict(s.job, truth).time_s, s.kind) for s in samples]
    samples += [Sample(j, predict(j, truth).time_s, j[2]) for j in jobs]
    tiny = {k: v.get("cold_launch_s", v["launch_s"]) for k, v in true.items()}
    fit = fit_efficiency(samples, host, tiny)
    assert fit["matmul"]["cold_launch_s"] == pytest.approx(1e-5) and fit["matmul"]["launch_s"] == pytest.approx(2e-6, rel=0.25)
    assert fit["elementwise"]["launch_s"] == pytest.approx(3e-6, rel=0.25)
    assert fit["elementwise"]["vector"] == pytest.approx(0.3, rel=0.25)
    assert fit["attention.decode"]["launch_s"] == fit["attention.decode"]["cold_launch_s"]   # no plan kernels: tiny
    _, _, ape = percent_errors(samples, with_efficiency(host, {**host.efficiency, "by_op": fit}))
    assert np.median(ape) < 0.02


def test_a_plan_resident_in_l3_streams_from_l3_and_a_larger_one_partly_from_dram(host):
    """The report prices main-memory traffic at the L3 bandwidth when every value of the graph fits the L3
    (a block called again and again), and the part that does not fit from DRAM."""
    import torch

    import attncc

    d = host.to_dict()
    for lv in d["levels"]:
        if lv["name"] == "l3":
            lv["capacity_bytes"] = 1 << 20   # a 1 MB L3, so that a small Linear overflows it
    hw = spec_from_dict(d, host.path)
    small = attncc.analyze(torch.nn.Linear(256, 256, bias=False), (torch.randn(1, 256),), hardware=hw)
    (row,) = small.rows
    assert row.cost.details["resident_in"] == "l3" and row.cost.bytes.get("dram", 0) == 0 and row.cost.bytes["l3"] > 0
    big = attncc.analyze(torch.nn.Linear(512, 1024, bias=False), (torch.randn(1, 512),), hardware=hw)
    (row,) = big.rows   # 2 MB of weights: about half of them stay in the 1 MB L3
    f = row.cost.details["resident_fraction"]
    assert 0.4 < f < 0.5 and row.cost.bytes["dram"] == pytest.approx((1 - f) / f * row.cost.bytes["l3"], rel=0.01)


@pytest.mark.slow
def test_plan_kernels_pair_report_rows_with_plan_steps(host):
    """Every kernel of a compiled block is a calibration sample: one case per distinct kernel, each the report row
    of its plan step (same kernel class), timed inside whole plan calls."""
    pytest.importorskip("tvm")
    from attncc.backends.cpu import kernel_suite
    from attncc.calibration import measure_kernels
    from attncc import calibration_plans

    (plan,) = calibration_plans.plan_kernel_cases(kernel_suite, quick=True)[:1]
    kinds = {c.job[2].split(".")[0] for c in plan.cases}
    assert {"matmul", "elementwise", "layout", "attention"} <= kinds
    times = plan.run()
    assert len(times) > max(c.step for c in plan.cases)
    assert all(t > 0 for t in times)
    res = measure_kernels(kernel_suite, quick=True, rounds=1, reps=1, wait_s=0, log=None, plans=[plan], max_reps=3)
    in_plan = [s for s in res["samples"] if s.job[0] == "row"]
    assert len(in_plan) == len(plan.cases) and all(0 < s.measured_s < 1 for s in in_plan)
