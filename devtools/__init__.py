"""devtools: the embedded services, the demo, the traffic builder and a webhook receiver, for ``driftloop demo``
and ``driftloop up``, the tests and the benchmarks; nothing in production imports it."""
