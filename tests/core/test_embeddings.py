import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import core.embeddings as embeddings
from core.embeddings import EMBED_CHARS, cached, embed


def test_cached_embeds_a_list_once_and_reads_it_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["How do I sort a list in Python?", "x" * (EMBED_CHARS + 500)]
    vectors = cached(texts, "static", tmp_path)
    assert np.allclose(vectors, embed(["How do I sort a list in Python?", "x" * EMBED_CHARS], "static"))
    assert len(list(tmp_path.glob("vectors-static*.npy"))) == 1 and not list(tmp_path.glob(".*"))

    def refuse(texts: list[str], model: str) -> np.ndarray:
        raise AssertionError("embedded again")

    monkeypatch.setattr(embeddings, "embed", refuse)
    assert np.array_equal(cached(texts, "static", tmp_path), vectors)
    with pytest.raises(AssertionError, match="embedded again"):  # other texts: another file
        cached(texts[:1], "static", tmp_path)


def test_limit_threads_bounds_the_encoding_threads_of_every_thread() -> None:
    """The gate encodes in a worker thread (asyncio.to_thread): the bound set once holds there, and is at least 1."""
    before = torch.get_num_threads()
    seen: list[int] = []
    try:
        embeddings.limit_threads(0)
        thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert seen == [1] and torch.get_num_threads() == 1
        vectors = embed(["How do I sort a list in Python?", "Sort a Python list"], "minilm")
        assert vectors.shape == (2, 384) and float(vectors[0] @ vectors[1]) > 0.5
    finally:
        torch.set_num_threads(before)
