"""The ``tuned`` encoder: the static model distilled from MiniLM, its token table fitted so that a text's
mean-pooled vector regresses MiniLM's vector of the same text (the "tokenlearn" idea, in closed form).

The distilled table ``T`` (one row per word piece) first gets the linear map ``W`` that best carries its pooled
vectors onto MiniLM's (least squares), so the prior is ``P = T W`` in MiniLM's 384 dimensions. The table is then the
ridge regression pulled toward that prior: ``E = argmin ||A E - Y||² + λ ||E - P||²``, where ``A`` holds each
training text's mean-pooling weights over word pieces and ``Y`` MiniLM's unit vectors; its dual form
``E = P + Aᵀ (A Aᵀ + λ I)⁻¹ (Y - A P)`` costs one positive-definite solve of the size of the training set. Word
pieces absent from the training texts keep their prior row.

Training texts are ShareGPT human turns of :data:`core.corpora.TUNING_BENIGN`, past the pairs the benchmarks
read, less those whose start also opens a prompt there (ShareGPT repeats conversations and short turns such as
"continue": 704 of 7,581), so no benchmark stream holds a training text. Their MiniLM vectors are
:func:`core.embeddings.cached` in chunks of :data:`CHUNK` (minutes of MiniLM on 2 cores at the first ``make
install``; the first chunk is the injection model's benign training set, which then reads it from there). The
fitted model is written to ``.cache/embeddings/<key("tuned")>`` and loaded like the distilled one.

>>> import scipy.sparse as sp
>>> table = np.eye(3)
>>> pooled = sp.csr_matrix([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
>>> targets = np.array([[1.0, 0.0], [0.0, 1.0]])
>>> fitted = fit(table, pooled, targets, ridge=1e-9)
>>> np.round(pooled @ fitted, 3).tolist()
[[1.0, 0.0], [0.0, 1.0]]
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from core.corpora import BENCHMARK_BENIGN, TUNING_BENIGN, sharegpt_prompts
from core.embeddings import CACHE, EMBED_CHARS, cached, distilled, key, offline, saved_whole

if TYPE_CHECKING:
    from model2vec import StaticModel

CHUNK = 1500
"""Training texts per file of cached MiniLM vectors."""
RIDGE = 0.02
"""The pull ``λ`` toward the prior table (pooling weights sum to 1 per text), chosen on 500 of the slice's texts held
out of a fit on the rest (repeats included): Spearman of their pairwise similarities to MiniLM's 0.581 (0.01: 0.578,
0.04: 0.575; the linear map alone 0.466, the distilled table 0.196)."""


def training_set() -> tuple[list[str], np.ndarray]:
    """The training prompts (those of :data:`~core.corpora.TUNING_BENIGN` that no benchmark reads) and their MiniLM
    vectors (of their first :data:`~core.embeddings.EMBED_CHARS`, as the worker embeds a prompt)."""
    texts = sharegpt_prompts(TUNING_BENIGN)
    vectors = np.vstack([cached(texts[i : i + CHUNK], "minilm") for i in range(0, len(texts), CHUNK)])
    read = {text[:EMBED_CHARS] for text in sharegpt_prompts(BENCHMARK_BENIGN)}
    kept = [i for i, text in enumerate(texts) if text[:EMBED_CHARS] not in read]
    return [texts[i] for i in kept], vectors[kept]


def pooling(model: StaticModel, texts: list[str]) -> sp.csr_matrix:
    """One row per text: the weight of each word piece in its mean (as ``model.encode`` pools the text's start)."""
    ids = model.tokenize([text[:EMBED_CHARS] for text in texts])
    counts = np.array([len(row) for row in ids])
    weights = np.repeat(1 / np.maximum(counts, 1), counts)
    rows = np.repeat(np.arange(len(ids)), counts)
    columns = np.fromiter((token for row in ids for token in row), dtype=np.int64, count=int(counts.sum()))
    return sp.csr_matrix((weights, (rows, columns)), shape=(len(ids), model.embedding.shape[0]))


def fit(table: np.ndarray, pooled: sp.csr_matrix, targets: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    """The token table whose pooled rows (``pooled @ table``) regress ``targets``, pulled toward ``table`` mapped
    linearly onto the targets' space (see the module's docstring)."""
    table = np.asarray(table, dtype=np.float64)
    mapping = np.linalg.lstsq(pooled @ table, targets, rcond=None)[0]
    prior = table @ mapping
    gram = (pooled @ pooled.T).toarray()
    gram[np.diag_indices_from(gram)] += ridge
    residual = targets - pooled @ prior
    return prior + pooled.T @ scipy.linalg.solve(gram, residual, assume_a="pos")


def tuned(cache: Path = CACHE) -> Path:
    """The tuned model's folder in ``cache``, fitted first if absent (written to a temporary folder and renamed,
    as :func:`~core.embeddings.distilled` does)."""
    path = cache / key("tuned")
    if path.is_dir():
        return path
    offline()
    from model2vec import StaticModel

    base = StaticModel.from_pretrained(distilled(cache))
    texts, targets = training_set()
    table = fit(base.embedding, pooling(base, texts), targets)
    model = StaticModel(
        vectors=table.astype(np.float16),
        tokenizer=base.tokenizer,
        config=base.config | {"hidden_dim": table.shape[1], "apply_pca": None},
        normalize=True,
        base_model_name=base.base_model_name,
        language=base.language,
    )
    return saved_whole(model, path)
