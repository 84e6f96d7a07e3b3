"""monitor: traffic in, incidents out."""

from monitor.detectors import FeatureDetector, Shift
from monitor.events import SCHEMA_V1, InvalidEvent, Message, TrafficEvent, parse_event
from monitor.features import FEATURES, extract_features
from monitor.incidents import DriftIncident, Evidence, FeatureShift, IncidentKind
from monitor.segments import SegmentMonitor
from monitor.store import Collection, StreamStats, incidents

__all__ = [
    "FEATURES",
    "SCHEMA_V1",
    "Collection",
    "DriftIncident",
    "Evidence",
    "FeatureDetector",
    "FeatureShift",
    "IncidentKind",
    "InvalidEvent",
    "Message",
    "SegmentMonitor",
    "Shift",
    "StreamStats",
    "TrafficEvent",
    "extract_features",
    "incidents",
    "parse_event",
]
