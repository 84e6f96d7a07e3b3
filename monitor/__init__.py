"""monitor: traffic in, incidents out."""

from monitor.detector import Detector, Level
from monitor.detectors import CusumDetector, calibrated
from monitor.events import SCHEMA_V1, InvalidEvent, Message, TrafficEvent, parse_event
from monitor.features import FEATURES, extract_features
from monitor.incidents import (
    DriftIncident,
    Evidence,
    FeatureShift,
    IncidentKind,
    IncidentStatus,
    InvalidTransition,
    Resolution,
    transition,
)
from monitor.null import NullDetector
from monitor.records import StreamStats, incidents
from monitor.segments import SegmentMonitor

__all__ = [
    "FEATURES",
    "SCHEMA_V1",
    "CusumDetector",
    "Detector",
    "DriftIncident",
    "Evidence",
    "FeatureShift",
    "IncidentKind",
    "IncidentStatus",
    "InvalidEvent",
    "InvalidTransition",
    "Level",
    "Message",
    "NullDetector",
    "Resolution",
    "SegmentMonitor",
    "StreamStats",
    "TrafficEvent",
    "calibrated",
    "extract_features",
    "incidents",
    "parse_event",
    "transition",
]
