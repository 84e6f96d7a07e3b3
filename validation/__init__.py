"""validation: continuous validation of the production model: suites of probes, stress runs against an endpoint,
scores, results and reports; a regression becomes an incident."""
