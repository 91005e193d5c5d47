"""HTML report: the cost table plus a roofline plot (matplotlib, Agg) embedded as a PNG."""
from __future__ import annotations

import base64
import html
import io

from .report import CostReport, human, human_time


CLASS_COLORS = {"attention": "tab:red", "matmul": "tab:blue", "gated": "tab:cyan", "conv": "tab:purple",
                "rows": "tab:orange", "injective": "tab:green", "layout": "tab:gray", "rope": "tab:olive",
                "index_copy": "tab:brown", "reference": "black"}


def kernel_class(row) -> str:
    """The row's kernel class (kernel rows), else its op kind (per-op rows)."""
    return row.kernel_class or row.kind


def time_by_class(report: CostReport) -> dict[str, dict[str, float]]:
    """{kernel class: {"work": seconds of compute/memory, "launch": seconds of launch overhead}}, largest first."""
    out: dict[str, dict[str, float]] = {}
    for r in report.rows:
        e = out.setdefault(kernel_class(r), {"work": 0.0, "launch": 0.0})
        e["launch"] += r.cost.launch_s
        e["work"] += r.cost.time_s - r.cost.launch_s
    return dict(sorted(out.items(), key=lambda kv: -(kv[1]["work"] + kv[1]["launch"])))


def class_bar_png(report: CostReport) -> bytes:
    """A stacked horizontal bar: total time split by kernel class (each class's launch overhead hatched)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = time_by_class(report)
    fig, ax = plt.subplots(figsize=(7, 1.9), dpi=100)
    left = 0.0
    for cls, t in parts.items():
        color = CLASS_COLORS.get(cls, "tab:pink")
        ax.barh([0], [t["work"] * 1e6], left=left, color=color, label=cls)
        left += t["work"] * 1e6
        if t["launch"]:
            ax.barh([0], [t["launch"] * 1e6], left=left, color=color, hatch="//", edgecolor="white")
            left += t["launch"] * 1e6
    ax.set_yticks([])
    ax.set_xlabel("predicted time (us); hatched: launch overhead")
    ax.set_title(f"time per kernel class ({report.kernel_count} kernels)", fontsize=9)
    ax.legend(fontsize=7, ncol=min(5, len(parts)), loc="upper center", bbox_to_anchor=(0.5, -0.55))
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


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
    for i, (x, y, r) in enumerate(pts):
        ax.scatter([x], [y], s=20 + 300 * r.share, color=colors.get(r.kind, CLASS_COLORS.get(kernel_class(r), "tab:green")),
                   alpha=0.7)
        # every point is labelled with its kernel (numbered as in the table; names of the larger ones spelled out)
        label = f"{i + 1}" + (f" {r.name}" if r.share > 0.05 else "")
        ax.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
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
    bar = base64.b64encode(class_bar_png(report)).decode()
    hw = report.hardware
    head = ["#", "kernel" if report.grouping else "op", "kind", "class", "IR ops", "variant", "FLOPs",
            f"{hw.main_memory.name} bytes", "FLOP/B", "bound", "time", "launch", "share"]
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            i + 1, r.name, r.kind, kernel_class(r), ", ".join(r.ops) or "-", r.variant or "-",
            human(r.cost.flops + r.cost.vector_flops), human(r.cost.main_bytes, "B"),
            f"{r.cost.intensity:.3g}" if r.cost.main_bytes else "-", r.cost.bound, human_time(r.cost.time_s),
            human_time(r.cost.launch_s), f"{100 * r.share:.1f}%")) + "</tr>" for i, r in enumerate(report.rows))
    text = html.escape(report.to_text())
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>attncc cost report: {html.escape(report.graph_name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}} pre{{background:#f6f6f6;padding:1em}}</style>
</head><body><h1>attncc cost report: {html.escape(report.graph_name)} on {html.escape(hw.name)}</h1>
<p>{html.escape(hw.description)}; phase {html.escape(report.phase)}</p>
<img alt="roofline" src="data:image/png;base64,{png}">
<img alt="time per kernel class" src="data:image/png;base64,{bar}">
<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{cells}</table>
<h2>Summary and explanations</h2><pre>{text}</pre></body></html>"""
    with open(path, "w") as f:
        f.write(doc)
    return path
