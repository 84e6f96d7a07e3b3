"""The Evidently report of an incident: its segment's reference window against the drifted window.

Columns compared: every numeric feature of the rows, descriptors of the redacted prompt text (length,
words, non-letter share: all computed locally, nothing downloaded), the prompt text itself (Evidently's
text-content drift) and the prompts' sentence embeddings (``core.embeddings``, Evidently's
embeddings drift). Building one takes seconds of CPU: the worker calls :func:`build_report` in a thread, whose
native thread pools (OpenMP's, which Evidently's t-SNE map of the embeddings runs on, and BLAS's) it holds to one
thread: their spinning threads cost 1.2–1.3× the CPU beside one busy core (``python -m bench.report``); on a 2-core
machine loaded by three more jobs a 100-row report took 53 s of CPU, and 7.7 s with OpenMP on one thread in the run
after it (load average about 3 then).

Reports are kept gzip-compressed in Redis (``report:<incident id>``), next to the incident they explain:
Redis is the state the worker and the API already share, whereas the dataset store belongs to
``feedback``, which ``monitor`` must not import. A report is about 4 MB of HTML (Evidently embeds its
JavaScript, so it opens offline), about 1.2 MB compressed.
"""

from __future__ import annotations

import gzip
import math
import warnings
from collections.abc import Mapping, Sequence

import pandas as pd
from redis.asyncio import Redis
from threadpoolctl import threadpool_limits

from core import keys
from core.embeddings import DIMENSIONS, Model, embed
from core.redact import redact_all
from monitor.incidents import DriftIncident
from monitor.records import incidents

TEXT = "prompt"
NON_LETTERS = "prompt non-letter %"
EMBEDDING = "prompt_embedding"
MIN_ROWS = 10
"""Fewest rows a window needs (Evidently's embeddings drift trains a classifier on half of them)."""
MAX_ROWS = 500
"""Most rows of a window that are compared (the newest): bounds the time a report takes."""
Row = Mapping[str, float | str]


def report_path(incident_id: str) -> str:
    """The API route that serves an incident's report."""
    return f"/v1/incidents/{incident_id}/report"


def build_report(
    incident: DriftIncident, reference_rows: Sequence[Row], current_rows: Sequence[Row], model: Model
) -> str:
    """The report as a standalone HTML page. ``*_rows`` are dicts of feature name → number plus ``prompt``
    text; both windows must have the same columns and at least :data:`MIN_ROWS` rows (``ValueError``). The prompts
    are embedded by ``model``, the encoder the monitor watched them with."""
    features = _check(reference_rows, "reference")
    if set(_check(current_rows, "current")) != set(features):
        raise ValueError(f"the windows have different columns: {sorted(features)} vs {sorted(_columns(current_rows))}")
    # imported here: Evidently takes seconds to import, and the API, which imports this module, never builds
    from evidently import DataDefinition, Dataset, Report
    from evidently.descriptors import TextLength, WordCount
    from evidently.metrics import EmbeddingsDrift
    from evidently.presets import DataDriftPreset

    reference, current = _frame(reference_rows[-MAX_ROWS:], model), _frame(current_rows[-MAX_ROWS:], model)
    vectors = [f"{EMBEDDING}_{i}" for i in range(DIMENSIONS[model])]
    definition = DataDefinition(
        numerical_columns=[*features, NON_LETTERS], text_columns=[TEXT], embeddings={EMBEDDING: vectors}
    )
    descriptors = [TextLength(TEXT, alias="prompt length"), WordCount(TEXT, alias="prompt words")]
    report = Report([DataDriftPreset(), EmbeddingsDrift(embeddings_name=EMBEDDING)])
    with threadpool_limits(limits=1), warnings.catch_warnings():  # numpy warns of constant columns (no refusals)
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(
            Dataset.from_pandas(current, data_definition=definition, descriptors=descriptors),
            Dataset.from_pandas(reference, data_definition=definition, descriptors=descriptors),
            name=f"{incident.kind} in {incident.segment}",
            metadata={"incident": incident.id, "moved": ", ".join(s.feature for s in incident.features)},
        )
        return snapshot.get_html_str(as_iframe=False)


def _columns(rows: Sequence[Row]) -> set[str]:
    return set(rows[0]) if rows else set()


def _check(rows: Sequence[Row], window: str) -> list[str]:
    """The numeric feature names of a window, after checking its rows."""
    if len(rows) < MIN_ROWS:
        raise ValueError(f"the {window} window has {len(rows)} rows; a report needs at least {MIN_ROWS}")
    columns = _columns(rows)
    if TEXT not in columns:
        raise ValueError(f"the {window} rows have no {TEXT!r} text")
    for row in rows:
        if set(row) != columns:
            raise ValueError(f"the {window} rows do not all have the same columns")
        if not isinstance(row[TEXT], str):
            raise ValueError(f"{TEXT!r} must be text in the {window} rows")
        bad = [k for k, v in row.items() if k != TEXT and (not isinstance(v, int | float) or not math.isfinite(v))]
        if bad:
            raise ValueError(f"features {bad} of the {window} rows are not finite numbers")
    return [name for name in rows[0] if name != TEXT]


def _frame(rows: Sequence[Row], model: Model) -> pd.DataFrame:
    """Rows as a frame: features, redacted prompts, and one column per embedding dimension."""
    frame = pd.DataFrame([dict(row) for row in rows])
    frame[TEXT] = redact_all(frame[TEXT].tolist())
    frame[NON_LETTERS] = [non_letter_percent(text) for text in frame[TEXT]]
    vectors = embed(frame[TEXT].tolist(), model)
    embedded = pd.DataFrame(vectors, columns=[f"{EMBEDDING}_{i}" for i in range(DIMENSIONS[model])], index=frame.index)
    return pd.concat([frame, embedded], axis=1)


def non_letter_percent(text: str) -> float:
    """The share (%) of characters that are neither letters nor spaces, as Evidently's ``NonLetterCharacterPercentage``
    counts them, but 0 for an empty prompt (a restored segment's recent events have none), where it divides by zero.

    >>> non_letter_percent("ab 1!"), non_letter_percent("")
    (40.0, 0.0)
    """
    return 100 * sum(not ch.isalpha() and ch != " " for ch in text) / len(text) if text else 0.0


async def store_report(redis: Redis, incident_id: str, html: str) -> None:
    """Keep an incident's report and point the incident's ``report_url`` at the route that serves it."""
    await redis.set(keys.report(incident_id), gzip.compress(html.encode()))
    await incidents(redis).update(incident_id, lambda i: i.model_copy(update={"report_url": report_path(i.id)}))


async def load_report(redis: Redis, incident_id: str) -> str | None:
    """The HTML of an incident's report; None when none was stored."""
    raw = await redis.get(keys.report(incident_id))
    return gzip.decompress(raw).decode() if raw is not None else None
