"""Builds the Grafana dashboards in ``grafana/dashboards/`` from code (grafana-foundation-sdk).

    python grafana/build_dashboards.py          # (re)writes every dashboard JSON file
    python grafana/build_dashboards.py --check  # exits 1 when a checked-in file differs from what this builds

Metric names and labels come from ``docs/metrics.md`` only. Every panel query returns at least one series on a
running system that has consumed events: metrics that only appear after a rare event (an incident, a job, a
rejected event) are aggregated with a fallback (``or on() vector(0)`` and friends). Ranges are fixed (``[5m]``),
and the template variables ``$segment`` and ``$feature`` are only used as regex matchers (``=~"$segment"``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, common, dashboard, prometheus, stat, statetimeline, table
from grafana_foundation_sdk.builders import timeseries as ts
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="prometheus")
TAGS = ["driftloop"]

# --- queries and panels ---------------------------------------------------------------------------------------


def query(expr: str, legend: str = "__auto", ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    return q.instant() if instant else q.range()


def quantiles(histogram: str, window: str, qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> list[prometheus.Dataquery]:
    """``histogram_quantile`` of a histogram's buckets summed over every process, one query per quantile."""
    return [
        query(
            f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket[{window}])))",
            f"p{round(q * 100)}",
            ref=chr(ord("A") + i),
        )
        for i, q in enumerate(qs)
    ]


def steps(*pairs: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds: ``(None, base colour), (value, colour), ...``."""
    return (
        dashboard.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=value, color=color) for value, color in pairs])
    )


def value_map(texts: dict[int, tuple[str, str]]) -> list[dm.ValueMapping]:
    """Value mappings ``{value: (text, colour)}``."""
    options = {
        str(value): dm.ValueMappingResult(text=text, color=color, index=i)
        for i, (value, (text, color)) in enumerate(texts.items())
    }
    return [dm.ValueMap(options=options)]


def _common(panel: Any, title: str, description: str, targets: list[prometheus.Dataquery], w: int, h: int) -> Any:
    panel = panel.title(title).description(description).datasource(DATASOURCE).span(w).height(h)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def graph(
    title: str,
    description: str,
    *targets: prometheus.Dataquery,
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    threshold: float | None = None,
    stacked: bool = False,
    min_val: float | None = 0,
) -> ts.Panel:
    """A time series panel; ``threshold`` draws a dashed red line at that value."""
    panel = _common(ts.Panel(), title, description, list(targets), w, h).unit(unit).fill_opacity(10).line_width(1)
    panel = panel.legend(
        common.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.TABLE)
        .placement(cm.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(["lastNotNull", "max"])
    ).tooltip(common.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
    if min_val is not None:
        panel = panel.min(min_val)
    if stacked:
        panel = panel.stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL))
    if threshold is not None:
        panel = panel.thresholds(steps((None, "green"), (threshold, "red"))).thresholds_style(
            common.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED)
        )
    return panel


def single(
    title: str,
    description: str,
    target: prometheus.Dataquery,
    unit: str = "short",
    thresholds: dashboard.ThresholdsConfig | None = None,
    mappings: list[dm.ValueMapping] | None = None,
    w: int = 4,
    h: int = 4,
    decimals: float | None = None,
) -> stat.Panel:
    """A stat panel showing the last value, coloured by ``thresholds`` (green when none)."""
    panel = (
        _common(stat.Panel(), title, description, [target], w, h)
        .unit(unit)
        .thresholds(thresholds or steps((None, "green")))
        .color_mode(cm.BigValueColorMode.VALUE)
        .graph_mode(cm.BigValueGraphMode.AREA)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if mappings:
        panel = panel.mappings(mappings)
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def bars(
    title: str,
    description: str,
    target: prometheus.Dataquery,
    unit: str = "short",
    thresholds: dashboard.ThresholdsConfig | None = None,
    w: int = 12,
    h: int = 8,
) -> bargauge.Panel:
    """Horizontal bars, one per series, of the query's current value."""
    return (
        _common(bargauge.Panel(), title, description, [target], w, h)
        .unit(unit)
        .min(0)
        .thresholds(thresholds or steps((None, "blue")))
        .display_mode(cm.BarGaugeDisplayMode.GRADIENT)
        .orientation(cm.VizOrientation.HORIZONTAL)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def states(
    title: str, description: str, target: prometheus.Dataquery, mappings: list[dm.ValueMapping], w: int = 12, h: int = 8
) -> statetimeline.Panel:
    """A state timeline, one lane per series, coloured through value mappings."""
    return (
        _common(statetimeline.Panel(), title, description, [target], w, h)
        .mappings(mappings)
        .thresholds(steps((None, "text")))
        .color_scheme(dashboard.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .show_value(cm.VisibilityMode.NEVER)
        .merge_values(True)
        .fill_opacity(80)
    )


def row(title: str) -> dashboard.Row:
    return dashboard.Row(title)


def board(uid: str, title: str, description: str, time_from: str = "now-1h") -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .refresh("30s")
        .time(time_from, "now")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            dashboard.DashboardLink("driftloop dashboards")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(TAGS)
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
        )
    )


# --- shared queries -------------------------------------------------------------------------------------------

# Every API replica reports the same shared-state numbers, so take the max over replicas before summing.
OPEN_INCIDENTS = "sum(max by (kind, severity) (driftloop_incidents_open))"
INCIDENTS_BY_KIND = "max by (kind, severity) (driftloop_incidents_open)"
CAUSES_BY_KIND = "max by (kind, severity) (sum by (kind, severity, instance) (driftloop_incident_causes_open))"
DATASETS = "max(driftloop_datasets)"
REJECTED_SHARE = (
    'sum(rate(driftloop_events_total{{outcome="rejected"}}[{w}])) / (sum(rate(driftloop_events_total[{w}])) > 0)'
    " or vector(0)"
)
# 0 quiet, 1 drafting, 2 open: only the segment's current state is exported (value 1).
SEGMENT_STATE = (
    'max by (segment) (driftloop_segment_state{{segment=~"{segment}", state="quiet"}} * 0'
    ' or driftloop_segment_state{{segment=~"{segment}", state="drafting"}}'
    ' or driftloop_segment_state{{segment=~"{segment}", state="open"}} * 2)'
)
SEGMENT_STATE_MAP = value_map({0: ("quiet", "green"), 1: ("drafting", "orange"), 2: ("open", "red")})
RATIO_STEPS = steps((None, "green"), (0.8, "orange"), (1, "red"))
# A worker first exports its lag a few seconds after it joined the group (a timer, every 5 s).
LAG_UNKNOWN = "not measured yet"


def incidents_opened(window: str) -> str:
    """Incidents opened per kind and severity; kinds without any are 0 (the API always exports every kind)."""
    return (
        f"sum by (kind, severity) (increase(driftloop_incidents_opened_total[{window}]))"
        " or max by (kind, severity) (driftloop_incidents_open) * 0"
    )


def or_placeholder(expr: str, label: str, placeholder: str, value: float = 0) -> str:
    """``expr`` (grouped by ``label``), or one series ``{label="placeholder"}`` at ``value`` while it is empty."""
    return f'{expr} or on() label_replace(vector({value}), "{label}", "{placeholder}", "", "")'


# --- dashboards -----------------------------------------------------------------------------------------------


def overview() -> dashboard.Dashboard:
    return (
        board(
            "driftloop-overview",
            "driftloop / Overview",
            "Traffic consumed, drift by segment and open incidents. Details: Features, Loop, Quality, Health.",
        )
        .with_row(row("Now"))
        .with_panel(
            single(
                "Events accepted",
                "Traffic events accepted per second, all workers (5m rate).",
                query('sum(rate(driftloop_events_total{outcome="accepted"}[5m]))'),
                unit="cps",
            )
        )
        .with_panel(
            single(
                "Rejected share",
                "Share of consumed events sent to llm.traffic.dlq (5m). The alert fires above 5% over 10m.",
                query(REJECTED_SHARE.format(w="5m")),
                unit="percentunit",
                thresholds=steps((None, "green"), (0.01, "orange"), (0.05, "red")),
            )
        )
        .with_panel(
            single(
                "Open incidents",
                "Open drift incidents of every kind (GET /v1/incidents).",
                query(OPEN_INCIDENTS),
                thresholds=steps((None, "green"), (1, "red")),
            )
        )
        .with_panel(
            single(
                "Segments in drift",
                "Segments (model/route/tenant) whose detector state is open.",
                query('count(max by (segment) (driftloop_segment_state{state="open"})) or vector(0)'),
                thresholds=steps((None, "green"), (1, "red")),
            )
        )
        .with_panel(
            single(
                "Segments monitored",
                "Segments exported by the workers (the busiest DRIFTLOOP_METRICS_MAX_SEGMENTS per worker).",
                query("count(max by (segment) (driftloop_segment_events)) or vector(0)"),
                thresholds=steps((None, "blue")),
            )
        )
        .with_panel(
            single(
                "Datasets published",
                "Dataset versions published (GET /v1/datasets).",
                query(DATASETS),
                thresholds=steps((None, "blue")),
            )
        )
        .with_row(row("Traffic"))
        .with_panel(
            graph(
                "Events consumed by outcome",
                "Traffic events per second by outcome: accepted, or rejected to the dead-letter topic.",
                query("sum by (outcome) (rate(driftloop_events_total[5m]))", "{{outcome}}"),
                unit="cps",
                stacked=True,
            )
        )
        .with_panel(
            bars(
                "Events seen per segment",
                "Events each segment's detectors have seen (the busiest 20).",
                query("topk(20, max by (segment) (driftloop_segment_events))", "{{segment}}", instant=True),
            )
        )
        .with_row(row("Drift"))
        .with_panel(
            graph(
                "Drift ratio, worst feature per segment",
                "Detector statistic over its threshold, the highest over the segment's features. Above 1 the"
                " detector is about to fire. Per feature: driftloop / Features.",
                query(
                    "max by (segment) (driftloop_drift_statistic / driftloop_drift_threshold)",
                    "{{segment}}",
                ),
                unit="none",
                threshold=1,
            )
        )
        .with_panel(
            states(
                "Segment detector state",
                "quiet, drafting (a warning level reached, collecting evidence) or open (incident opened); a segment"
                " still collecting its reference shows no state.",
                query(SEGMENT_STATE.format(segment=".*"), "{{segment}}"),
                SEGMENT_STATE_MAP,
            )
        )
        .with_panel(
            graph(
                "Open incidents by kind",
                "Open drift incidents by kind and severity (read from Redis by the API).",
                query(INCIDENTS_BY_KIND, "{{kind}} ({{severity}})"),
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Open causes by kind",
                "Every cause named by open incidents, by kind and severity: an attack wave with a latency regression"
                " is one incident (kind attack-wave) with two causes. Causes without a recipe (latency) get no job.",
                query(CAUSES_BY_KIND, "{{kind}} ({{severity}})"),
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Incidents opened (per 15m)",
                "Incidents opened by the workers per 15 minutes, by kind and severity.",
                query(incidents_opened("15m"), "{{kind}} ({{severity}})"),
            )
        )
    )


def features() -> dashboard.Dashboard:
    sel = 'segment=~"$segment", feature=~"$feature"'
    statistic, threshold = f"driftloop_drift_statistic{{{sel}}}", f"driftloop_drift_threshold{{{sel}}}"
    return (
        board(
            "driftloop-features",
            "driftloop / Features",
            "Per segment and feature: the detector's CUSUM statistic against its drift level, calibrated on the"
            " reference to the service's false-alarm budget.",
        )
        .with_variable(variable("segment", "Segment", "label_values(driftloop_drift_statistic, segment)"))
        .with_variable(
            variable("feature", "Feature", 'label_values(driftloop_drift_statistic{segment=~"$segment"}, feature)')
        )
        .with_row(row("Now"))
        .with_panel(
            single(
                "Features above threshold",
                "Segment/feature pairs whose statistic is above its threshold: the detector is about to fire.",
                query(f"count({statistic} > {threshold}) or vector(0)"),
                thresholds=steps((None, "green"), (1, "red")),
                w=6,
            )
        )
        .with_panel(
            single(
                "Segments drafting or open",
                "Segments with a first detection (drafting) or an open incident.",
                query(
                    'count(max by (segment) (driftloop_segment_state{segment=~"$segment", state=~"drafting|open"}))'
                    " or vector(0)"
                ),
                thresholds=steps((None, "green"), (1, "orange")),
                w=6,
            )
        )
        .with_panel(
            single(
                "Highest drift ratio",
                "The highest statistic / threshold over the selected segments and features.",
                query(f"max({statistic} / {threshold})"),
                unit="none",
                thresholds=RATIO_STEPS,
                decimals=2,
                w=6,
            )
        )
        .with_panel(
            single(
                "Events seen",
                "Events seen by the detectors of the selected segments.",
                query('sum(max by (segment) (driftloop_segment_events{segment=~"$segment"}))'),
                thresholds=steps((None, "blue")),
                w=6,
            )
        )
        .with_panel(ratio_table(statistic, threshold))
        .with_row(row("Statistic vs threshold, per feature"))
        .with_panel(
            graph(
                "$feature: statistic vs threshold",
                "Solid: the statistic per segment; dashed: its threshold. Repeated for each selected feature.",
                query(f"max by (segment) ({statistic})", "{{segment}} statistic", ref="A"),
                query(f"max by (segment) ({threshold})", "{{segment}} threshold", ref="B"),
                unit="none",
            )
            .override_by_regexp(
                ".* threshold$",
                [
                    dm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
                    dm.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
                ],
            )
            .repeat("feature")
            .repeat_direction("h")
            .max_per_row(2)
        )
        .with_row(row("Segments"))
        .with_panel(
            graph(
                "Drift ratio by segment and feature",
                "statistic / threshold; above 1 the detector is about to fire.",
                query(f"max by (segment, feature) ({statistic} / {threshold})", "{{segment}} {{feature}}"),
                unit="none",
                threshold=1,
            )
        )
        .with_panel(
            states(
                "Segment detector state",
                "quiet, drafting (a warning level reached, collecting evidence) or open (incident opened); a segment"
                " still collecting its reference shows no state.",
                query(SEGMENT_STATE.format(segment="$segment"), "{{segment}}"),
                SEGMENT_STATE_MAP,
            )
        )
    )


def variable(name: str, label: str, label_values: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query({"qryType": 1, "query": label_values, "refId": "PrometheusVariableQueryEditor-VariableQuery"})
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def ratio_table(statistic: str, threshold: str) -> table.Panel:
    """One row per segment and feature: statistic, threshold and their ratio (coloured)."""
    panel = _common(
        table.Panel(),
        "Statistic vs threshold now",
        "Current value per segment and feature, highest ratio first.",
        [
            query(f"max by (segment, feature) ({statistic})", ref="A", instant=True).format(pm.PromQueryFormat.TABLE),
            query(f"max by (segment, feature) ({threshold})", ref="B", instant=True).format(pm.PromQueryFormat.TABLE),
            query(f"max by (segment, feature) ({statistic} / {threshold})", ref="C", instant=True).format(
                pm.PromQueryFormat.TABLE
            ),
        ],
        24,
        9,
    )
    return (
        panel.with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True},
                    "renameByName": {"Value #A": "statistic", "Value #B": "threshold", "Value #C": "ratio"},
                },
            )
        )
        .sort_by([common.TableSortByFieldState().display_name("ratio").desc(True)])
        .decimals(4)
        .override_by_name(
            "ratio",
            [
                dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
                dm.DynamicConfigValue(id_val="thresholds", value=RATIO_STEPS.build()),
                dm.DynamicConfigValue(id_val="decimals", value=2),
            ],
        )
    )


def loop() -> dashboard.Dashboard:
    return (
        board(
            "driftloop-loop",
            "driftloop / Loop",
            "From incident to training: incidents open, generation jobs, dataset versions, finetune.requests"
            " messages and webhook deliveries.",
            time_from="now-6h",
        )
        .with_row(row("The loop now"))
        .with_panel(
            single(
                "Open incidents",
                "Open drift incidents (GET /v1/incidents).",
                query(OPEN_INCIDENTS),
                thresholds=steps((None, "green"), (1, "red")),
            )
        )
        .with_panel(
            single(
                "Jobs queued or running",
                "Generation jobs not finished yet (GET /v1/jobs).",
                query('sum(max by (state) (driftloop_jobs{state=~"queued|running"}))'),
                thresholds=steps((None, "blue")),
            )
        )
        .with_panel(
            single(
                "Jobs failed",
                "Generation jobs in state failed, all time (GET /v1/jobs).",
                query('max(driftloop_jobs{state="failed"})'),
                thresholds=steps((None, "green"), (1, "red")),
            )
        )
        .with_panel(
            single(
                "Datasets published",
                "Dataset versions published, all time (GET /v1/datasets).",
                query(DATASETS),
                thresholds=steps((None, "blue")),
            )
        )
        .with_panel(
            single(
                "Fine-tune requests (24h)",
                "Messages published on finetune.requests in the last 24 hours.",
                query("sum(increase(driftloop_finetune_requests_published_total[24h]))"),
                thresholds=steps((None, "blue")),
                decimals=0,
            )
        )
        .with_panel(
            single(
                "Webhooks failed (24h)",
                "Webhook deliveries given up after all retries in the last 24 hours (GET /v1/webhooks/deliveries).",
                query('sum(increase(driftloop_webhook_deliveries_total{outcome="failed"}[24h]))'),
                thresholds=steps((None, "green"), (1, "red")),
                decimals=0,
            )
        )
        .with_row(row("Incidents"))
        .with_panel(
            graph(
                "Open incidents by kind",
                "Open drift incidents by kind and severity.",
                query(INCIDENTS_BY_KIND, "{{kind}} ({{severity}})"),
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Incidents opened (per 15m)",
                "Incidents opened by the workers per 15 minutes, by kind and severity.",
                query(incidents_opened("15m"), "{{kind}} ({{severity}})"),
            )
        )
        .with_row(row("Jobs"))
        .with_panel(
            graph(
                "Jobs by state",
                "Generation jobs by state, all time (read from Redis by the API).",
                query("max by (state) (driftloop_jobs)", "{{state}}"),
                w=8,
            )
        )
        .with_panel(
            graph(
                "Jobs finished (per 15m)",
                "Generation jobs finished per 15 minutes, by final state.",
                query("sum by (state) (increase(driftloop_jobs_total[15m]))", "{{state}}"),
                w=8,
            )
        )
        .with_panel(
            graph(
                "Job duration",
                "Wall time of a generation job (quantiles over 15m; empty while no job ran).",
                *quantiles("driftloop_job_duration_seconds", "15m", (0.5, 0.95)),
                unit="s",
                w=8,
            )
        )
        .with_row(row("Incident to dataset"))
        .with_panel(
            graph(
                "Incident to finetune.requests",
                "From an incident opening to its dataset's finetune.requests message (quantiles over 15m; empty "
                "while no dataset was published). The dashed line is the goal: 30 s.",
                *quantiles("driftloop_incident_to_finetune_seconds", "15m", (0.5, 0.95)),
                unit="s",
                threshold=30,
            )
        )
        .with_panel(
            graph(
                "Time per stage",
                "Mean seconds a published dataset's incident spent in each stage over 15m, stacked: recipe (its job "
                "made), queued (waiting for a job slot), generation, quality gate, writing, publishing.",
                query(
                    "sum by (stage) (rate(driftloop_loop_stage_seconds_sum[15m])) "
                    "/ sum by (stage) (rate(driftloop_loop_stage_seconds_count[15m]))",
                    "{{stage}}",
                ),
                unit="s",
                stacked=True,
            )
        )
        .with_row(row("Datasets and delivery"))
        .with_panel(
            graph(
                "Datasets published",
                "Dataset versions published, all time.",
                query(DATASETS, "datasets"),
                w=8,
            )
        )
        .with_panel(
            graph(
                "Fine-tune requests published (per 15m)",
                "Messages published on finetune.requests per 15 minutes.",
                query("sum(increase(driftloop_finetune_requests_published_total[15m]))", "finetune.requests"),
                w=8,
            )
        )
        .with_panel(
            graph(
                "Webhook deliveries by outcome (per 15m)",
                "Webhook deliveries per 15 minutes: delivered, or failed after all retries.",
                query("sum by (outcome) (increase(driftloop_webhook_deliveries_total[15m]))", "{{outcome}}"),
                w=8,
            )
        )
        .with_row(row("Candidate models"))
        .with_panel(
            graph(
                "Candidate verdicts (per 24h)",
                "Candidate models reported back by training systems and verified against production, per 24 hours:"
                " promote (the incident's failure rate fell beyond both Wilson intervals, nothing else regressed),"
                " reject (with reasons on GET /v1/candidates/{id}), failed (could not be verified).",
                query("sum by (outcome) (increase(driftloop_candidate_verdicts_total[24h]))", "{{outcome}}"),
                w=12,
            )
        )
        .with_panel(
            graph(
                "Incident pass rate, last verification",
                "Pass rate on the incident's probes in the last verification: production beside the candidate"
                " (none until a candidate was verified).",
                query(
                    or_placeholder("max by (model) (driftloop_candidate_incident_pass_rate)", "model", "none yet"),
                    "{{model}}",
                ),
                unit="percentunit",
                w=12,
            )
        )
    )


def quality() -> dashboard.Dashboard:
    def figure(title: str, name: str, description: str, thresholds: dashboard.ThresholdsConfig, **kw: Any) -> Any:
        return single(
            title,
            description,
            query(f'max(driftloop_dataset_quality{{figure="{name}"}}) or vector(0)'),
            thresholds=thresholds,
            w=6,
            **kw,
        )

    no_dataset = value_map({0: ("no dataset yet", "text")})
    samples = "sum by (technique) (increase(driftloop_samples_generated_total[{w}]))"
    rejected = "sum by (reason) (increase(driftloop_samples_rejected_total[{w}]))"
    return (
        board(
            "driftloop-quality",
            "driftloop / Quality",
            "Generation quality: samples kept by technique, samples dropped by reason, the quality figures of the"
            " last dataset version and quality gate failures.",
            time_from="now-6h",
        )
        .with_row(row("Last dataset version (quality gate: rows >= 10, distinct-2 >= 0.2, no copies, no PII)"))
        .with_panel(
            figure(
                "Rows",
                "rows",
                "Rows of the last dataset version published by a worker.",
                steps((None, "red"), (10, "green")),
                mappings=no_dataset,
            )
        )
        .with_panel(
            figure(
                "Distinct-2",
                "distinct_2",
                "Diversity: distinct word bigrams over all bigrams of the prompts.",
                steps((None, "red"), (0.2, "green")),
                mappings=no_dataset,
                decimals=3,
            )
        )
        .with_panel(
            figure(
                "Verbatim copies",
                "verbatim_copies",
                "Generated prompts equal to a real prompt of the incident's evidence.",
                steps((None, "green"), (1, "red")),
            )
        )
        .with_panel(
            figure(
                "PII values",
                "pii_values",
                "PII values found in the generated prompts and reference answers.",
                steps((None, "green"), (1, "red")),
            )
        )
        .with_row(row("Samples"))
        .with_panel(
            graph(
                "Samples kept by technique (per 15m)",
                "Samples kept in datasets per 15 minutes, by the technique that made them.",
                query(or_placeholder(samples.format(w="15m"), "technique", "none yet"), "{{technique}}"),
                stacked=True,
            )
        )
        .with_panel(
            bars(
                "Samples kept by technique (24h)",
                "Samples kept in datasets in the last 24 hours, by technique.",
                query(or_placeholder(samples.format(w="24h"), "technique", "none yet"), "{{technique}}", instant=True),
            )
        )
        .with_panel(
            graph(
                "Samples rejected by reason (per 15m)",
                "Samples dropped before a dataset per 15 minutes, by reason (e.g. duplicate).",
                query(or_placeholder(rejected.format(w="15m"), "reason", "none yet"), "{{reason}}"),
                stacked=True,
            )
        )
        .with_panel(
            bars(
                "Samples rejected by reason (24h)",
                "Samples dropped before a dataset in the last 24 hours, by reason.",
                query(or_placeholder(rejected.format(w="24h"), "reason", "none yet"), "{{reason}}", instant=True),
                thresholds=steps((None, "orange")),
            )
        )
        .with_row(row("Quality gate"))
        .with_panel(
            single(
                "Quality gate failures (24h)",
                "Jobs whose samples failed the quality gate in the last 24 hours: no dataset for their incident.",
                query("sum(increase(driftloop_quality_gate_failures_total[24h]))"),
                thresholds=steps((None, "green"), (1, "red")),
                decimals=0,
                w=6,
                h=8,
            )
        )
        .with_panel(
            graph(
                "Quality gate failures and jobs (per 1h)",
                "Quality gate failures against jobs finished, per hour.",
                query("sum(increase(driftloop_quality_gate_failures_total[1h]))", "quality gate failures", ref="A"),
                query("sum by (state) (increase(driftloop_jobs_total[1h]))", "jobs {{state}}", ref="B"),
                w=18,
            )
        )
    )


def health() -> dashboard.Dashboard:
    backend = value_map({1: ("up", "green"), 0: ("down", "red"), -1: ("not configured", "text")})
    return (
        board(
            "driftloop-health",
            "driftloop / Health",
            "Pipeline health: consumption and lag, dead letters, processing latency, webhook delivery latency, the"
            " LLM backend and stress runs.",
        )
        .with_row(row("Consumption"))
        .with_panel(
            single(
                "Since the last event",
                "Time since the most recent event consumed by any worker. Alert: over 10 minutes.",
                query("time() - max(driftloop_last_event_timestamp_seconds)"),
                unit="s",
                thresholds=steps((None, "green"), (300, "orange"), (600, "red")),
                w=6,
            )
        )
        .with_panel(
            single(
                "Consumer lag",
                "Events behind the partition ends, all topics and workers. Alert: over 1000 and growing.",
                query("sum(driftloop_consumer_lag_events) or vector(0)"),
                thresholds=steps((None, "green"), (1000, "orange")),
                w=6,
            )
        )
        .with_panel(
            single(
                "Dead-letter share",
                "Share of consumed events rejected to llm.traffic.dlq over 10m. Alert: over 5%.",
                query(REJECTED_SHARE.format(w="10m")),
                unit="percentunit",
                thresholds=steps((None, "green"), (0.01, "orange"), (0.05, "red")),
                w=6,
            )
        )
        .with_panel(
            single(
                "LLM backend",
                "Whether DRIFTLOOP_LLM_BASE_URL answers GET /models (worst API replica); 'not configured' when"
                " the API has no LLM endpoint set.",
                query("min(driftloop_llm_backend_up) or vector(-1)"),
                mappings=backend,
                thresholds=steps((None, "text")),
                w=6,
            )
        )
        .with_panel(
            graph(
                "Consumer lag by topic",
                "Events behind the partition ends, summed over workers.",
                query(
                    or_placeholder("sum by (topic) (driftloop_consumer_lag_events)", "topic", LAG_UNKNOWN), "{{topic}}"
                ),
                threshold=1000,
                w=8,
            )
        )
        .with_panel(
            graph(
                "Consumer lag per worker",
                "Events behind the ends of the partitions assigned to each worker.",
                query(
                    or_placeholder("sum by (instance, topic) (driftloop_consumer_lag_events)", "topic", LAG_UNKNOWN),
                    "{{instance}} {{topic}}",
                ),
                w=8,
            )
        )
        .with_panel(
            graph(
                "Since the last event, per worker",
                "Seconds since each worker consumed its last event. Alert: over 600 s.",
                query("time() - max by (instance) (driftloop_last_event_timestamp_seconds)", "{{instance}}"),
                unit="s",
                threshold=600,
                w=8,
            )
        )
        .with_row(row("Dead letters"))
        .with_panel(
            graph(
                "Dead-lettered events by reason",
                "Events per second sent to llm.traffic.dlq, by reason (GET /v1/stream has the totals).",
                query(
                    or_placeholder("sum by (reason) (rate(driftloop_events_rejected_total[5m]))", "reason", "none"),
                    "{{reason}}",
                ),
                unit="cps",
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Dead-letter share",
                "Share of consumed events rejected over 10m; the dashed line is the alert's 5%.",
                query(REJECTED_SHARE.format(w="10m"), "rejected share"),
                unit="percentunit",
                threshold=0.05,
            )
        )
        .with_row(row("Processing"))
        .with_panel(
            graph(
                "Event processing latency",
                "Parse, features and detectors for one event: quantiles over all workers (5m).",
                *quantiles("driftloop_event_processing_seconds", "5m"),
                unit="s",
            )
        )
        .with_panel(
            graph(
                "Events processed per worker",
                "Events through the detectors per second, per worker (5m rate).",
                query("sum by (instance) (rate(driftloop_event_processing_seconds_count[5m]))", "{{instance}}"),
                unit="cps",
            )
        )
        .with_row(row("Delivery and LLM backend"))
        .with_panel(
            graph(
                "Webhook delivery latency",
                "Latency of one webhook delivery attempt: quantiles over 15m (empty while nothing is delivered).",
                *quantiles("driftloop_webhook_delivery_seconds", "15m", (0.5, 0.95)),
                unit="s",
                w=8,
            )
        )
        .with_panel(
            graph(
                "Webhook deliveries by outcome",
                "Deliveries per second: delivered, or failed after all retries (15m rate).",
                query("sum by (outcome) (rate(driftloop_webhook_deliveries_total[15m]))", "{{outcome}}"),
                unit="cps",
                w=8,
            )
        )
        .with_panel(
            states(
                "LLM backend per API replica",
                "1 when DRIFTLOOP_LLM_BASE_URL answers GET /models; 'not configured' when it is unset.",
                query(
                    or_placeholder("max by (instance) (driftloop_llm_backend_up)", "instance", "not configured", -1),
                    "{{instance}}",
                ),
                backend,
                w=8,
            )
        )
        .with_row(row("LLM endpoint and stress runs"))
        .with_panel(
            graph(
                "LLM calls by outcome",
                "Chat completions per second asked of DRIFTLOOP_LLM_BASE_URL by generation jobs and stress runs,"
                " after the client's retries (5m rate); 'none' while nothing called it.",
                query(
                    or_placeholder("sum by (outcome) (rate(driftloop_llm_requests_total[5m]))", "outcome", "none"),
                    "{{outcome}}",
                ),
                unit="cps",
                stacked=True,
                w=6,
            )
        )
        .with_panel(
            graph(
                "LLM tokens by kind",
                "Prompt and completion tokens per second that the endpoint reported (5m rate).",
                query(
                    or_placeholder("sum by (kind) (rate(driftloop_llm_tokens_total[5m]))", "kind", "none"), "{{kind}}"
                ),
                w=6,
            )
        )
        .with_panel(
            graph(
                "LLM call latency",
                "95th percentile of one successful chat completion, queueing at the server included (5m).",
                query(
                    "histogram_quantile(0.95, sum by (le) (rate(driftloop_llm_request_seconds_bucket[5m])))"
                    " or vector(0)",
                    "p95",
                ),
                unit="s",
                w=6,
            )
        )
        .with_panel(
            graph(
                "Stress runs: pass rate and attack success by family",
                "Last scheduled stress run per suite: share of probes with the expected behaviour, and share of attack"
                " probes whose canary the model emitted; -1 until a suite has run.",
                query(
                    or_placeholder("min by (family) (driftloop_stress_pass_rate)", "family", "no run", -1),
                    "pass {{family}}",
                ),
                query(
                    or_placeholder("max by (family) (driftloop_stress_attack_success_rate)", "family", "no run", -1),
                    "attack success {{family}}",
                    ref="B",
                ),
                unit="percentunit",
                min_val=None,
                w=6,
            )
        )
    )


DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "driftloop-overview.json": overview,
    "driftloop-features.json": features,
    "driftloop-loop.json": loop,
    "driftloop-quality.json": quality,
    "driftloop-health.json": health,
}

# --- rendering ------------------------------------------------------------------------------------------------


def render(builder: dashboard.Dashboard) -> str:
    """Stable JSON: sorted keys, panel ids numbered in order, a trailing newline."""
    model = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    next_id = 1
    for panel in model.get("panels", []):
        for p in [panel, *panel.get("panels", [])]:
            p["id"] = next_id
            next_id += 1
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a checked-in dashboard differs")
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the dashboard JSON files")
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path, text = args.out / name, render(build())
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    extra = sorted(p.name for p in args.out.glob("*.json") if p.name not in DASHBOARDS) if args.out.is_dir() else []
    if args.check and (stale or extra):
        for name in stale:
            print(f"{args.out / name} is out of date: run python grafana/build_dashboards.py", file=sys.stderr)
        for name in extra:
            print(f"{args.out / name} is not built by grafana/build_dashboards.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
