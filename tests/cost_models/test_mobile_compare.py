"""The same model priced on mobile-cpu, mobile-gpu and host-cpu side by side (`attncc report --hardware a,b,c`)."""
from __future__ import annotations

import attncc
from attncc.cli import load_model, main as cli_main
from attncc.cost_models.hardware import get_hardware
from attncc.cost_models.report import human, human_time

DEVICES = ("mobile-cpu", "mobile-gpu", "host-cpu")


def _columns(out: str) -> dict[str, list[str]]:
    """Row name -> the three device cells (cells are right-aligned, separated by 2+ spaces)."""
    import re

    rows = {}
    for line in out.splitlines()[2:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 4:
            rows[cells[0]] = cells[1:]
    return rows


def test_report_compares_mobile_cpu_gpu_and_host(capsys):
    model = "examples/models.py:llama_block"
    assert cli_main(["report", model, "--hardware", ",".join(DEVICES)]) == 0
    rows = _columns(capsys.readouterr().out)
    assert rows["hardware"] == list(DEVICES)
    # each column is that device's own report: its time, and the spec figures it was priced with
    module, inputs = load_model(model)
    for i, name in enumerate(DEVICES):
        spec = get_hardware(name)
        assert rows["peak FLOP/s"][i] == f"{human(spec.peak_flops('float32'))} float32"
        assert rows["main-memory B/s"][i] == human(spec.main_memory.bandwidth_bytes_per_s, "B/s")
        assert rows["time"][i] == human_time(attncc.analyze(module, inputs, hardware=name).total_time_s)
    # the devices really differ (different specs give different prices), and the first is the speedup base
    assert len(set(rows["time"])) == 3 and rows["speedup vs first"][0] == "1.00x"
