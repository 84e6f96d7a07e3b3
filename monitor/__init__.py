"""monitor: traffic in, incidents out (the stream step, its features, detectors and incidents; import what you need
from its module: the package imports nothing, so a process that needs only the detectors, as calibration's do,
loads only those)."""
