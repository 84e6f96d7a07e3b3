"""Continuous validation: suites of probes, stress runs against an endpoint, scores, results and reports."""
