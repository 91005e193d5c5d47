"""analyze_graph, CostReport forms, compare, catalog and calibration."""
import json
import re

import numpy as np
import pytest

from attncc.cost_models import (HardwareError, UnboundDimError, analyze_graph, calibrate_host, compare, get_hardware,
                                list_hardware)
from attncc.ir import Attention, AttentionSpec, Graph, Linear, MaskSpec, Reshape, RMSNorm, Softmax, Transpose


def toy_graph(kv_heads=8, name="toy"):
    g = Graph(name)
    x = g.add_input("x", "float32", ("batch", "seq", 512))
    w = g.add_constant(np.zeros((512, 512), np.float32), "wq")
    n = g.add1(RMSNorm(has_weight=False), [x], name="norm")
    h = g.add1(Linear(), [n, w], name="q_proj")
    q = g.add1(Transpose((0, 2, 1, 3)), [g.add1(Reshape(("batch", "seq", 8, 64)), [h])], name="q_t")
    kv = g.add_input("kv", "float32", ("batch", kv_heads, "past", 64))
    spec = AttentionSpec(8, kv_heads, 64, mask=MaskSpec(causal=True, alignment="bottom_right"))
    o = g.add1(Attention(spec=spec), [q, kv, kv], name="attn")
    g.set_outputs([g.add1(Softmax(), [o], name="sm")])
    return g


def test_rows_sum_to_totals_and_shares():
    r = analyze_graph(toy_graph(), "host-cpu", seq=128, batch=2, past=128)
    assert r.total_time_s == pytest.approx(sum(x.cost.time_s for x in r.rows))
    assert r.main_bytes == pytest.approx(sum(x.cost.main_bytes for x in r.rows))
    assert sum(x.share for x in r.rows) == pytest.approx(1.0)
    assert r.weights_bytes == 512 * 512 * 4
    assert r.kv_cache_bytes == 2 * 128 * 8 * 128 * 4
    assert r.peak_memory_bytes > r.weights_bytes


def test_unbound_symbol_is_named():
    with pytest.raises(UnboundDimError, match="'past'"):
        analyze_graph(toy_graph(), "host-cpu", seq=128, batch=2)


def test_decode_phase_prices_one_token():
    pre = analyze_graph(toy_graph(), "h100", seq=256, batch=1, past=256)
    dec = analyze_graph(toy_graph(), "h100", phase="decode", past=4096, batch=1)
    attn = next(x for x in dec.rows if x.kind == "Attention")
    assert dec.dims["seq"] == 1 and attn.cost.details["effective"]["q_len"] == 1
    assert attn.cost.details["pairs"] == 8 * 4096
    small = analyze_graph(toy_graph(), "h100", phase="decode", past=256, batch=1)
    assert small.total_time_s < pre.total_time_s and small.total_time_s < dec.total_time_s


def test_text_json_html(tmp_path):
    r = analyze_graph(toy_graph(), "h100", seq=1024, batch=4, past=1024)
    text = r.to_text()
    assert "attn" in text and "total time" in text and "why the top ops" in text and "ridge point" in text
    d = json.loads(r.to_json())
    assert {row["name"] for row in d["rows"]} == {"norm", "q_proj", "reshape", "q_t", "attn", "sm"}
    page = (tmp_path / "r.html")
    r.to_html(str(page))
    html = page.read_text()
    assert re.search(r'<img[^>]+src="data:image/png;base64,[A-Za-z0-9+/]{1000,}', html)


def test_compare_variants_side_by_side():
    text = compare([("MHA", toy_graph(8), "h100", {"phase": "decode", "past": 8192, "batch": 16}),
                    ("GQA", toy_graph(2), "h100", {"phase": "decode", "past": 8192, "batch": 16})])
    lines = text.splitlines()
    assert "MHA" in lines[0] and "GQA" in lines[0]
    kv = next(l for l in lines if l.startswith("KV cache")).split()
    assert kv[-2] != kv[-1]  # 4x fewer kv heads -> different cache


def test_catalog_has_sources_and_levels():
    names = list_hardware()
    for want in ("h100-sxm", "h200", "a100-80gb", "host-cpu", "mobile-cpu", "mobile-gpu", "optical-4f"):
        assert want in names
    for n in names:
        hw = get_hardware(n)
        assert hw.compute_units and all(u.source for u in hw.compute_units), n
        assert all(lv.source for lv in hw.levels), n
        assert not hw.main_memory.on_chip and hw.on_chip_bytes > 0
    assert get_hardware("h100").name == "h100-sxm"
    with pytest.raises(HardwareError, match="unknown hardware 'tpu'"):
        get_hardware("tpu")


def test_calibrate_host_writes_spec_that_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path))
    spec = calibrate_host(save=True, quick=True)
    assert (tmp_path / "host-cpu.json").exists()
    assert spec.peak_flops("float32") > 1e9 and spec.main_memory.bandwidth_bytes_per_s > 1e9
    assert get_hardware("host-cpu").path == str(tmp_path / "host-cpu.json")
    assert "measured" in get_hardware("host-cpu").main_memory.source
