"""Online topics of one segment's prompts, from their sentence embeddings (unit vectors).

The first ``reference_size`` embeddings are the reference: k-means on half of them gives ``topics``
centroids, and the novelty radius is the ``quantile`` of the other half's cosine distances to their
nearest centroid (held out, so about ``1 - quantile`` of new on-topic prompts are novel). After
that each embedding is assigned online: to its nearest reference topic when within the radius; otherwise
it is *novel* and joins (or starts) an emerging topic by leader clustering with the same radius, so a new
cluster of requests shows up as a new topic id (``topics``, ``topics + 1``, …). The state is plain numpy
and lists: it pickles with the segment's detectors.

>>> rng = np.random.default_rng(0)
>>> def cloud(center, n):
...     x = center + 0.05 * rng.standard_normal((n, 16))
...     return x / np.linalg.norm(x, axis=1, keepdims=True)
>>> a, b = np.eye(16)[0], np.eye(16)[1]
>>> model = TopicModel(reference_size=400, topics=2, quantile=0.95)
>>> [model.assign(v) for v in cloud(a, 400)][-1] is None  # still collecting the reference
True
>>> same = [model.assign(v) for v in cloud(a, 400)]
>>> 0.02 < sum(s.novel for s in same) / 400 < 0.1  # same topic: about 1 - quantile novel
True
>>> sorted({s.topic for s in same if not s.novel})  # on-topic prompts land in reference topics 0 .. topics - 1
[0, 1]
>>> shifted = [model.assign(v) for v in cloud(b, 50)]
>>> from collections import Counter
>>> [(topic, members)] = Counter(s.topic for s in shifted).most_common(1)
>>> all(s.novel for s in shifted), topic >= 2, members > 25  # one new topic id gathers most of the cloud
(True, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

MAX_EMERGING = 32
MAX_TOPICS = 16
"""Most reference topics a model may have: each has its ``topic_share_<id>`` rate feature
(:data:`monitor.features.TOPIC_FEATURES`), and the feature registry is static."""


@dataclass(frozen=True)
class Assignment:
    """Where one embedding went: its topic id, whether it is far from every reference topic, its cosine
    distance to the nearest reference topic, and how many reference topics the model has (ids below it)."""

    topic: int
    novel: bool
    distance: float
    topics: int = MAX_TOPICS


@dataclass
class TopicModel:
    """Reference topics fitted once, then online assignment with emerging topics (see the module docstring)."""

    reference_size: int = 200
    topics: int = 16
    quantile: float = 0.95
    seed: int = 0
    reference: list[np.ndarray] = field(default_factory=list)
    centroids: np.ndarray | None = None
    radius: float = 0.0
    emerging: dict[int, tuple[np.ndarray, int]] = field(default_factory=dict)
    """Emerging topic id -> (sum of its members' vectors, member count)."""
    next_topic: int = 0

    def __post_init__(self) -> None:
        if self.reference_size < self.topics:
            raise ValueError(f"reference_size ({self.reference_size}) must be at least topics ({self.topics})")
        if not 2 <= self.topics <= MAX_TOPICS:
            raise ValueError(f"topics must be in [2, {MAX_TOPICS}] (one topic_share feature each), got {self.topics}")
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile}")

    @property
    def fitted(self) -> bool:
        return self.centroids is not None

    def _fit(self) -> None:
        """Centroids from every other reference vector, the radius from the vectors held out: distances of
        the very points k-means was fitted on are optimistic, so a radius taken from them calls a large share
        of new on-topic prompts novel (seen: 22% of quiet real traffic instead of 5%)."""
        vectors = np.stack(self.reference)
        fit, held_out = vectors[::2], vectors[1::2]
        # one OpenMP thread: the worker fits in a thread beside the stream, and k-means' threads spin for its core
        # (800 vectors beside a busy core: 0.15 s of CPU with two threads, 0.03 s with one)
        with threadpool_limits(limits=1, user_api="openmp"):
            kmeans = KMeans(n_clusters=min(self.topics, len(fit)), n_init=3, random_state=self.seed).fit(fit)
        centroids = kmeans.cluster_centers_
        self.centroids = (centroids / np.linalg.norm(centroids, axis=1, keepdims=True)).astype(np.float32)
        distances = 1 - (held_out @ self.centroids.T).max(axis=1)
        self.radius = float(np.quantile(distances, self.quantile))
        self.next_topic = self.topics
        self.reference = []

    def assign(self, vector: np.ndarray) -> Assignment | None:
        """Assign one unit vector; None while the reference is being collected (and on the call that fits it)."""
        if self.centroids is None:
            self.reference.append(np.asarray(vector, dtype=np.float32))
            if len(self.reference) >= self.reference_size:
                self._fit()
            return None
        [nearest], [distance] = self.nearest(np.asarray(vector)[None, :])
        if distance <= self.radius:
            return Assignment(int(nearest), False, float(distance), self.topics)
        return Assignment(self._emerge(vector), True, float(distance), self.topics)

    def nearest(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest reference topic of each row of ``vectors`` (fitted model) and the cosine distance to it;
        :meth:`assign` uses it, and a batch (the benchmark) gets the same assignments without the emerging state."""
        if self.centroids is None:
            raise ValueError("the topics are not fitted yet")
        similarities = np.asarray(vectors, dtype=np.float32) @ self.centroids.T
        nearest = similarities.argmax(axis=1)
        return nearest, 1 - similarities[np.arange(len(nearest)), nearest]

    def _emerge(self, vector: np.ndarray) -> int:
        """Id of the emerging topic ``vector`` joins (the nearest whose mean direction is within the radius),
        or of the new one it starts; beyond :data:`MAX_EMERGING` the smallest emerging topic is forgotten."""
        best, best_similarity = None, 1 - self.radius
        for topic, (total, _) in self.emerging.items():
            similarity = float(total @ vector / np.linalg.norm(total))
            if similarity >= best_similarity:
                best, best_similarity = topic, similarity
        if best is None:
            if len(self.emerging) >= MAX_EMERGING:
                del self.emerging[min(self.emerging, key=lambda t: self.emerging[t][1])]
            best, self.next_topic = self.next_topic, self.next_topic + 1
            self.emerging[best] = (np.zeros_like(vector, dtype=np.float32), 0)
        total, count = self.emerging[best]
        self.emerging[best] = (total + vector, count + 1)
        return best
