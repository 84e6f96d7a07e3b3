"""Figures of a batch of texts and of their embeddings: n-gram diversity, embedding spread and a two-sample
distance (MMD²) with its permutation p-value."""

from __future__ import annotations

import numpy as np

PERMUTATIONS = 200


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Diversity across texts: distinct word n-grams of the batch over the sum of each text's distinct n-grams
    (1.0: no two texts share an n-gram; repetition inside one text is not penalised).

    >>> distinct_n(["a b c", "a b d"]), distinct_n(["a b a b", "c d"])
    (0.75, 1.0)
    """
    per_text = [{tuple(words[i : i + n]) for i in range(len(words) - n + 1)} for words in (t.split() for t in texts)]
    total = sum(len(grams) for grams in per_text)
    return len(set().union(*per_text)) / total if total else 0.0


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise cosine distances of unit vectors (rows of ``a`` against rows of ``b``)."""
    return np.clip(1.0 - a @ b.T, 0.0, 2.0)


def mmd2(x: np.ndarray, y: np.ndarray, permutations: int = PERMUTATIONS, seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD² of samples ``x`` and ``y`` (RBF kernel, bandwidth the median pooled distance) and its
    permutation p-value.

    >>> rng = np.random.default_rng(0)
    >>> same = mmd2(rng.normal(size=(40, 3)), rng.normal(size=(40, 3)))
    >>> apart = mmd2(rng.normal(size=(40, 3)), rng.normal(2, size=(40, 3)))
    >>> same[0] < 0.05 < apart[0], same[1] > 0.05 > apart[1]
    (True, True)
    """
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"MMD² needs two points a side, got {len(x)} and {len(y)}")
    pooled = np.vstack([x, y]).astype(np.float64)
    norms = (pooled**2).sum(axis=1)
    squared = np.maximum(norms[:, None] + norms[None, :] - 2 * pooled @ pooled.T, 0.0)
    bandwidth = np.median(np.sqrt(squared[np.triu_indices(len(pooled), 1)])) or 1.0
    kernel = np.exp(-squared / (2 * bandwidth**2))
    np.fill_diagonal(kernel, 0.0)
    n, m = len(x), len(y)

    def statistic(in_x: np.ndarray) -> float:
        kxx, kyy = kernel[np.ix_(in_x, in_x)], kernel[np.ix_(~in_x, ~in_x)]
        kxy = kernel[np.ix_(in_x, ~in_x)]
        return kxx.sum() / (n * (n - 1)) + kyy.sum() / (m * (m - 1)) - 2 * kxy.mean()

    labels = np.arange(n + m) < n
    observed = statistic(labels)
    rng = np.random.default_rng(seed)
    null = [statistic(rng.permutation(labels)) for _ in range(permutations)]
    return float(observed), float((1 + sum(v >= observed for v in null)) / (1 + permutations))


def mean_pairwise_distance(vectors: np.ndarray) -> float | None:
    """Mean cosine distance over pairs of unit vectors; None for fewer than two."""
    if len(vectors) < 2:
        return None
    distances = cosine_distances(vectors, vectors)
    return float(distances[np.triu_indices(len(vectors), 1)].mean())
