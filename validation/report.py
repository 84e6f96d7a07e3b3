"""Reports of a stress run: JSON (summary, every score) and one self-contained HTML page with plots."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from validation.results import GroupResult
from validation.run import StressRun

PAGE = jinja2.Template(
    """<!doctype html><html><head><meta charset="utf-8"><title>stress {{ s.suite }} on {{ s.model }}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;
padding:.25em .5em}.fail{color:#b00}</style></head><body>
<h1>Stress run: suite {{ s.suite }}@{{ s.suite_version }} on {{ s.model }}</h1>
<p>run {{ s.run_id }}, finished {{ s.finished_at }}; {{ s.scored }} of {{ s.probes }} probes scored,
{{ s.errors }} errors. System prompt: <code>{{ system_prompt }}</code></p>
{% for title, png in plots %}<h2>{{ title }}</h2>
<img alt="{{ title }}" src="data:image/png;base64,{{ png }}">{% endfor %}
<h2>Families</h2><table><tr><th>family</th><th>pass rate [95% CI]</th><th>attack success [95% CI]</th></tr>
{% for name, r in s.families.items() %}<tr><td>{{ name }}</td>
{% for rate in (r.pass_rate, r.attack_success) %}<td>{% if rate %}{{ rate.successes }}/{{ rate.trials }} =
{{ rate.rate }} [{{ rate.low }}, {{ rate.high }}]{% endif %}</td>{% endfor %}</tr>
{% endfor %}</table>
<h2>Failed probes</h2><table><tr><th>probe</th><th>family</th><th>why</th><th>reply</th></tr>
{% for f in failed %}<tr class="fail"><td>{{ f.probe_id }}</td><td>{{ f.family }}</td><td>{{ f.reason }}</td>
<td>{{ f.reply[:300] }}</td></tr>{% endfor %}</table></body></html>""",
    autoescape=True,
)


def report_json(run: StressRun) -> dict:
    return {
        "summary": run.summary.model_dump(mode="json"),
        "system_prompt": run.system_prompt,
        "scores": [s.model_dump(mode="json") for s in run.scores],
    }


def write_json(run: StressRun, path: Path) -> Path:
    path.write_text(json.dumps(report_json(run), indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def write_html(run: StressRun, path: Path) -> Path:
    families = run.summary.families
    plots = [("Pass rate per family", _bars(families, "pass_rate"))]
    attacked = {name: r for name, r in families.items() if r.attack_success is not None}
    if attacked:
        plots.append(("Attack success rate per family", _bars(attacked, "attack_success")))
    failed = [s for s in run.scores if not s.passed]
    page = PAGE.render(s=run.summary, system_prompt=run.system_prompt, plots=plots, failed=failed)
    path.write_text(page, encoding="utf-8")
    return path


def _bars(results: dict[str, GroupResult], metric: str) -> str:
    """A horizontal bar per family with its interval as an error bar, as base64 PNG."""
    names = list(results)
    rates = [getattr(results[n], metric) for n in names]
    errors = [[r.rate - r.low for r in rates], [r.high - r.rate for r in rates]]
    figure, axes = plt.subplots(figsize=(7, 0.35 * len(names) + 1))
    axes.barh(names, [r.rate for r in rates], xerr=errors, capsize=3, color="#4c72b0")
    axes.set_xlim(0, 1)
    axes.invert_yaxis()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()
