"""Prometheus metrics of the monitor."""

from prometheus_client import Counter

EVENTS = Counter("driftloop_events_total", "Traffic events consumed, by outcome", ["outcome"])
REJECTED = Counter("driftloop_events_rejected_total", "Events sent to the dead-letter topic, by reason", ["reason"])
INCIDENTS = Counter("driftloop_incidents_opened_total", "Drift incidents opened, by kind", ["kind"])
