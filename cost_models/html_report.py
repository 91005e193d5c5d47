"""HTML report: the cost table plus a roofline plot (matplotlib, Agg) embedded as a PNG."""
from __future__ import annotations

import base64
import html
import io

from .report import CostReport, human, human_time


def roofline_png(report: CostReport, dtype: str | None = None) -> bytes:
    """A log-log roofline of `report.hardware` with every op placed at (intensity, achieved FLOP/s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hw = report.hardware
    dtype = dtype or report.dtype
    peak = hw.peak_flops(dtype)
    bw = hw.main_memory.bandwidth_bytes_per_s
    work = lambda r: r.cost.flops + r.cost.vector_flops  # noqa: E731
    pts = [(work(r) / r.cost.main_bytes, work(r) / r.cost.time_s, r)
           for r in report.rows if r.cost.main_bytes and r.cost.time_s and work(r)]
    xs = [p[0] for p in pts] or [1.0]
    lo, hi = min(min(xs), hw.ridge_point(dtype)) / 10, max(max(xs), hw.ridge_point(dtype)) * 10
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.loglog(grid, [min(peak, x * bw) for x in grid], "k-", label=f"{hw.name} roofline ({dtype})")
    ax.axvline(hw.ridge_point(dtype), color="grey", ls=":", label=f"ridge {hw.ridge_point(dtype):.3g} FLOP/B")
    colors = {"Attention": "tab:red", "FusedAttention": "tab:red", "MatMul": "tab:blue", "Linear": "tab:blue"}
    for x, y, r in pts:
        ax.scatter([x], [y], s=20 + 300 * r.share, color=colors.get(r.kind, "tab:green"), alpha=0.7)
        if r.share > 0.05:
            ax.annotate(r.name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"arithmetic intensity (FLOP per {hw.main_memory.name} byte)")
    ax.set_ylabel("achieved FLOP/s (predicted)")
    ax.set_title(f"{report.graph_name} on {hw.name}, {report.phase}")
    ax.legend(fontsize=8, loc="lower right")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_html(report: CostReport, path: str) -> str:
    """Write the report as one self-contained HTML file."""
    png = base64.b64encode(roofline_png(report)).decode()
    hw = report.hardware
    head = ["op", "kind", "variant", "FLOPs", f"{hw.main_memory.name} bytes", "FLOP/B", "bound", "time", "share"]
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            r.name, r.kind, r.variant or "-", human(r.cost.flops + r.cost.vector_flops), human(r.cost.main_bytes, "B"),
            f"{r.cost.intensity:.3g}" if r.cost.main_bytes else "-", r.cost.bound, human_time(r.cost.time_s),
            f"{100 * r.share:.1f}%")) + "</tr>" for r in report.rows)
    text = html.escape(report.to_text())
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>attncc cost report: {html.escape(report.graph_name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}} pre{{background:#f6f6f6;padding:1em}}</style>
</head><body><h1>attncc cost report: {html.escape(report.graph_name)} on {html.escape(hw.name)}</h1>
<p>{html.escape(hw.description)}; phase {html.escape(report.phase)}</p>
<img alt="roofline" src="data:image/png;base64,{png}">
<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{cells}</table>
<h2>Summary and explanations</h2><pre>{text}</pre></body></html>"""
    with open(path, "w") as f:
        f.write(doc)
    return path
