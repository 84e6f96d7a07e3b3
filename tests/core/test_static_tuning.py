import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

import core.static_tuning as tuning
from core.corpora import HELD_OUT_BENIGN, sharegpt_prompts
from core.embeddings import CACHE, distilled, embed, key


def _agreement(vectors: np.ndarray, reference: np.ndarray) -> float:
    """Spearman correlation of the pairwise cosine similarities of ``vectors`` with those of ``reference``."""
    upper = np.triu_indices(len(vectors), 1)
    return float(spearmanr((vectors @ vectors.T)[upper], (reference @ reference.T)[upper]).statistic)


def test_pooling_is_the_static_models_own_mean() -> None:
    from model2vec import StaticModel

    model = StaticModel.from_pretrained(distilled())
    texts = ["How do I sort a list in Python?", "Write a haiku about rain", "", "안녕하세요"]
    pooled = tuning.pooling(model, texts) @ model.embedding.astype(np.float64)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    assert norms[2] == 0, "a text without word pieces pools to zero, as encode() gives"
    assert np.allclose(pooled / np.maximum(norms, 1e-12), model.encode(texts, normalize=True), atol=2e-3)


@pytest.mark.slow
def test_tuned_vectors_agree_with_minilm_on_held_out_prompts_better_than_the_distillation() -> None:
    """Prompts the benchmarks read, none of them a training text: the fit generalises past what it was fitted on."""
    texts = [text[:1000] for text in sharegpt_prompts(HELD_OUT_BENIGN)[:300]]
    assert not set(texts) & {text[:1000] for text in tuning.training_set()[0]}
    minilm = embed(texts, "minilm")
    static, tuned = _agreement(embed(texts, "static"), minilm), _agreement(embed(texts, "tuned"), minilm)
    assert tuned > static + 0.2 and tuned > 0.5, (static, tuned)
    assert float(np.median(np.sum(embed(texts, "tuned") * minilm, axis=1))) > 0.7


def test_tuned_model_is_fitted_once_into_the_cache_and_loads_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small fit into a fresh folder (the distilled model copied in): the folder appears whole, a second call
    reuses it, and another process loads it with the hub off."""
    shutil.copytree(distilled(), tmp_path / key("static"))
    texts = sharegpt_prompts(tuning.TUNING_BENIGN)[:200]
    monkeypatch.setattr(tuning, "training_set", lambda: (texts, embed([text[:1000] for text in texts], "minilm")))
    path = tuning.tuned(tmp_path)
    assert path == tmp_path / key("tuned") and not list(tmp_path.glob(".*"))

    def refuse(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("fitted again")

    monkeypatch.setattr(tuning, "fit", refuse)
    assert tuning.tuned(tmp_path) == path
    script = (
        "import sys; from model2vec import StaticModel; "
        "v = StaticModel.from_pretrained(sys.argv[1]).encode(['How do I sort a list?', 'Pancake recipe']); "
        "print(v.shape, round(float(abs((v * v).sum(1) - 1).max()), 3))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.split("\n")[0] == "(2, 384) 0.0"


def test_the_shipped_tuned_model_is_in_the_cache() -> None:
    """``make install`` fitted it (the worker never waits minutes for a fit at its first event)."""
    assert (CACHE / key("tuned") / "model.safetensors").is_file()
