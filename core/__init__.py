"""core: what every app of driftloop stands on: the Redis store and its key names, the API toolkit and its one
error mapping, and text tools (redaction, embeddings, injection similarity). It imports no app."""
