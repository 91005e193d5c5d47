"""HTML form of a SystemReport: a per-rank timeline of one step (compute vs communication) and the text report."""
from __future__ import annotations

import base64
import html
import io


def timeline_png(report) -> bytes:
    """One lane per pipeline stage (its tp x ep ranks run the same timeline): per layer, the ops (compute/memory)
    then the layer's collectives, drawn side by side when the report assumes full overlap; sends between stages."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = report.parallel
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.6 * p.pp), dpi=100)
    start = 0.0
    ops, comm, send = report.op_time_s, report.collective_time_s, report.send_time_s / max(1, p.pp - 1) if p.pp > 1 else 0.0
    segments = 12   # the stage's work drawn as interleaved slices (layers share one profile)
    for stage in range(p.pp):
        y = p.pp - 1 - stage
        t = start
        for _ in range(segments):
            ax.broken_barh([(t, ops / segments)], (y + 0.55, 0.35), color="tab:blue")
            c0 = t + ops / segments if report.overlap == "none" else t
            ax.broken_barh([(c0, comm / segments)], (y + 0.1, 0.35), color="tab:orange")
            t = c0 + comm / segments if report.overlap == "none" else t + max(ops, comm) / segments
        if stage < p.pp - 1:
            ax.broken_barh([(t, send)], (y - 0.4, 0.35), color="tab:green")
            t += send
        start = t
    ax.set_yticks([p.pp - 1 - s + 0.5 for s in range(p.pp)])
    ax.set_yticklabels([f"stage {s} ({p.tp * p.ep} ranks)" for s in range(p.pp)])
    ax.set_xlabel("time within one step (s)")
    ax.set_title(f"{report.system.name}: tp={p.tp} ep={p.ep} pp={p.pp} dp={p.dp}; compute (blue), "
                 f"collectives (orange), sends (green); overlap {report.overlap}", fontsize=9)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_system_html(report, path: str) -> str:
    """Write the system report as one self-contained HTML file with the timeline picture."""
    png = base64.b64encode(timeline_png(report)).decode()
    rows = "".join(f"<tr><td>{html.escape(c.op)}</td><td>{c.bytes:.4g}</td><td>{c.ranks}</td><td>{html.escape(c.link)}</td>"
                   f"<td>{c.time_s * 1e6:.3g} us</td><td>x{c.count}</td></tr>" for c in report.collectives)
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>attncc system report</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{border:1px solid #ccc;padding:2px 6px}} pre{{background:#f6f6f6;padding:1em}}</style>
</head><body><h1>attncc system report: {html.escape(report.rank_report.graph_name)} on {html.escape(report.system.name)}</h1>
<img alt="per-rank timeline" src="data:image/png;base64,{png}">
<h2>Collectives per step (rank 0)</h2><table><tr><th>op</th><th>bytes</th><th>ranks</th><th>link</th><th>time</th><th>count</th></tr>{rows}</table>
<h2>Report</h2><pre>{html.escape(report.to_text())}</pre></body></html>"""
    with open(path, "w") as f:
        f.write(doc)
    return path
