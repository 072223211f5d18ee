"""The export report as one self-contained HTML page: a table of every artifact with its gates, and a plot.

The plot (size, latency and accuracy per artifact) is a PNG inlined as data, so the page opens from a
folder or a CI artifact store with nothing else beside it.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Final

import jinja2
import matplotlib

matplotlib.use("Agg")  # files only: export machines have no display

import matplotlib.pyplot as plt

from export.report import ExportReport

__all__ = ["HTML_FILE", "write_html_report"]

HTML_FILE: Final = "export.html"

_TEMPLATE: Final = jinja2.Template(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ r.name }}: export report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1f2933; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { padding: .35rem .7rem; border-bottom: 1px solid #d9e2ec; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.pass { color: #1b7f3b; } .fail { color: #b42318; font-weight: 600; }
.summary { padding: .6rem 1rem; border-radius: .4rem; display: inline-block; }
.summary.pass { background: #e3f9e5; } .summary.fail { background: #fde8e8; }
img { max-width: 100%; }
</style></head><body>
<h1>{{ r.name }}: export report</h1>
<p class="summary {{ 'pass' if not r.failed else 'fail' }}">
{% if not r.failed %}every artifact passed its gates{% else %}{{ r.failed|length }} artifact(s) missed a gate:
{{ r.failed|map(attribute='path')|join(', ') }}{% endif %}</p>
<p>Float model (PyTorch) accuracy on the held-out set: <b>{{ '%.4f'|format(r.float_accuracy) }}</b>.
Latency: batch 1, one thread, on the export machine (calibration workload {{ '%.3f'|format(r.calibration_ms) }} ms).</p>
<img alt="size, latency and accuracy per artifact" src="data:image/png;base64,{{ plot }}">
<h2>Artifacts and gates</h2>
<table><tr><th>artifact</th><th>size</th><th>p50 ms</th><th>p95 ms</th><th>accuracy</th><th>macro-F1</th>
<th>max |&Delta;| vs PyTorch</th><th>top-1 agreement</th><th>accuracy drop</th><th>gates</th></tr>
{% for a in r.artifacts %}<tr>
<td>{{ a.path }}</td><td>{{ '%.1f'|format(a.size_bytes / 1024) }} KiB</td>
<td>{{ '%.3f'|format(a.latency_p50_ms) }}</td><td>{{ '%.3f'|format(a.latency_p95_ms) }}</td>
<td>{{ '%.4f'|format(a.accuracy) }}</td><td>{{ '%.4f'|format(a.macro_f1) }}</td>
{% for g in a.gates %}<td class="{{ 'pass' if g.passed else 'fail' }}" title="{{ g.describe() }}">
{{ '%.3g'|format(g.value) }} ({{ 'ok' if g.passed else 'limit ' ~ ('%.3g'|format(g.limit)) }})</td>{% endfor %}
<td class="{{ 'pass' if a.passed else 'fail' }}">{{ 'passed' if a.passed else 'FAILED' }}</td>
</tr>{% endfor %}</table>
<h2>Latency estimates per device profile</h2>
<p>Estimates, not measurements: the latency measured here, scaled by the calibration workload and each profile's
latency factor.</p>
<table><tr><th>profile</th><th>artifact</th><th>p50 ms (estimate)</th><th>p95 ms (estimate)</th></tr>
{% for e in r.latency_estimates %}<tr><td>{{ e.profile }}</td><td>{{ e.artifact }}</td>
<td>{{ '%.3f'|format(e.p50_ms) }}</td><td>{{ '%.3f'|format(e.p95_ms) }}</td></tr>{% endfor %}</table>
</body></html>
""",
    autoescape=True,
)


def _plot(report: ExportReport) -> str:
    names = [a.path for a in report.artifacts]
    colours = ["#1b7f3b" if a.passed else "#b42318" for a in report.artifacts]
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.5 + 0.45 * len(names) + 1.2), sharey=True)
    axes[0].barh(names, [a.size_bytes / 1024 for a in report.artifacts], color=colours)
    axes[0].set_xlabel("size (KiB)")
    axes[1].barh(names, [a.latency_p95_ms for a in report.artifacts], color="#bcccdc", label="p95")
    axes[1].barh(names, [a.latency_p50_ms for a in report.artifacts], color=colours, label="p50")
    axes[1].set_xlabel("latency, batch 1, 1 thread (ms)")
    axes[1].legend(loc="lower right")
    axes[2].barh(names, [a.accuracy for a in report.artifacts], color=colours)
    axes[2].axvline(report.float_accuracy, color="#1f2933", linestyle="--", label="float model")
    lowest = min([a.accuracy for a in report.artifacts] + [report.float_accuracy])
    axes[2].set_xlim(max(0.0, lowest - 0.05), 1.0)
    axes[2].set_xlabel("held-out accuracy")
    axes[2].legend(loc="lower left")
    axes[0].invert_yaxis()
    fig.suptitle(f"{report.name}: green passed its gates, red missed one")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_html_report(report: ExportReport, path: Path) -> Path:
    """Write the page to ``path``."""
    path.write_text(_TEMPLATE.render(r=report, plot=_plot(report)))
    return path
