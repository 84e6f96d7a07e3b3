"""core: what every app of driftloop stands on: the Redis store and its key names (``store``, ``keys``), the API
toolkit with the caller (``api``) and one error mapping (``problems``, ``errors``), secrets sealed at rest
(``secrets``), and text tools (``redact``, ``embeddings``, ``scan``, ``risk``: injection patterns and similarity,
``refusal``). It imports no app."""
