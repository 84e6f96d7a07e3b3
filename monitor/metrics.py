"""Prometheus metrics of the monitor (catalogue in ``docs/metrics.md``), and a collector that exports live detector
state (the worker registers it)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.metrics import AppMetrics
from monitor.cardinality import DIMENSIONS
from monitor.events import REJECT_REASONS
from monitor.incidents import SEVERITY
from monitor.segments import SegmentMonitor

JUDGE_OUTCOMES = ("scored", "unreadable", "failed", "over_budget", "busy")
"""What became of a response offered to the judge (:mod:`monitor.judging`)."""


class MonitorMetrics(AppMetrics):
    """What the stream step counts: events consumed and rejected, incidents opened, time per event, lag, live and
    evicted segments, events folded into an overflow segment, the judge's verdicts."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.events = self.counter("driftloop_events_total", "Traffic events consumed, by outcome", ["outcome"])
        self.rejected = self.counter(
            "driftloop_events_rejected_total", "Events sent to the dead-letter topic, by reason", ["reason"]
        )
        self.incidents = self.counter(
            "driftloop_incidents_opened_total", "Drift incidents opened", ["kind", "severity"]
        )
        self.causes = self.counter(
            "driftloop_incident_causes_total",
            "Causes named by drift incidents, at opening or added while open (an incident may name several)",
            ["kind", "severity"],
        )
        self.processing = self.histogram(
            "driftloop_event_processing_seconds",
            "Parse, features and detectors for one event",
            buckets=(0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0),
        )
        self.last_event = self.gauge(
            "driftloop_last_event_timestamp_seconds", "Unix time when the worker last consumed an event"
        )
        self.consumer_lag = self.gauge(
            "driftloop_consumer_lag_events", "Events behind the end of the partition, per topic", ["topic"]
        )
        self.segments_live = self.gauge(
            "driftloop_segments_live", "Segments whose detector state is in the worker's memory (at most the cap)"
        )
        self.segments_evicted = self.counter(
            "driftloop_segments_evicted_total", "Segments checkpointed and dropped from memory, least recently used"
        )
        self.stream_resets = self.counter(
            "driftloop_stream_resets_total",
            "Segment positions reset because their partition's log restarted (a broker that lost its data, or a "
            "recreated topic)",
        )
        self.forwarded = self.counter(
            "driftloop_events_forwarded_total",
            "Traffic events forwarded to the segments topic: the partition they were produced to is not their "
            "segment's",
        )
        self.measured = self.counter(
            "driftloop_events_measured_total",
            "Events measured, by where: ahead by the helper process (embeddings on, see monitor.measure_ahead), or "
            "by the worker (in_process); a helper that keeps up measures nearly all",
            ["where"],
        )
        self.folded = self.counter(
            "driftloop_events_folded_total",
            "Events whose route or tenant was past its limit per model, monitored in an overflow segment",
            ["dimension"],
        )
        self.judge_verdicts = self.counter(
            "driftloop_judge_verdicts_total",
            "Sampled responses offered to the judge, by outcome (scored, unreadable, failed, over_budget, busy)",
            ["outcome"],
        )
        # Every known label value exists from the start, so rate() and increase() see the first event too.
        for outcome in ("accepted", "rejected"):
            self.events.labels(outcome)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        for kind, severity in SEVERITY.items():
            self.incidents.labels(kind, severity)
            self.causes.labels(kind, severity)
        for dimension in DIMENSIONS:
            self.folded.labels(dimension)
        for outcome in JUDGE_OUTCOMES:
            self.judge_verdicts.labels(outcome)


class DetectorCollector(Collector):
    """Per segment and feature: the detector's cut statistic and its threshold, and the segment's state.

    At most ``max_segments`` segments (the busiest) are exported, so label cardinality stays bounded.
    """

    def __init__(self, monitors: Mapping[str, SegmentMonitor], max_segments: int = 20) -> None:
        self.monitors, self.max_segments = monitors, max_segments

    def collect(self) -> Iterator[GaugeMetricFamily]:
        statistic = GaugeMetricFamily(
            "driftloop_drift_statistic",
            "Detector statistic against the reference: a feature's largest CUSUM, or a windowed test's distance",
            labels=["segment", "feature"],
        )
        threshold = GaugeMetricFamily(
            "driftloop_drift_threshold",
            "Drift level of that statistic, calibrated to the detector's share of the service ERT",
            labels=["segment", "feature"],
        )
        events = GaugeMetricFamily("driftloop_segment_events", "Events seen per segment", labels=["segment"])
        state = GaugeMetricFamily(
            "driftloop_segment_state",
            "1 for the segment's state (reference, quiet, drafting, open)",
            labels=["segment", "state"],
        )
        # the worker changes monitors in a thread while this runs in the metrics server's: iterate over copies
        busiest = sorted(list(self.monitors.values()), key=lambda m: m.events, reverse=True)[: self.max_segments]
        for monitor in busiest:
            events.add_metric([monitor.segment], monitor.events)
            state.add_metric([monitor.segment, monitor.state], 1)
            for name, detector in list(monitor.detectors.items()):
                statistic.add_metric([monitor.segment, name], detector.statistic)
                threshold.add_metric([monitor.segment, name], detector.threshold)
        yield from (statistic, threshold, events, state)
