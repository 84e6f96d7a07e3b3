"""The LLM path against a real OpenAI-compatible server: llama-cpp-python's, with SmolLM2-135M on the CPU."""

from __future__ import annotations

import asyncio

import httpx
import jsonschema
import pytest
from prometheus_client import CollectorRegistry

from devtools.embedded import SMOLLM2_ALIAS, free_port
from devtools.traffic import sharegpt_pairs
from driftloop.settings import Settings
from driftloop.worker import llm_generators
from generators.judge import LLMJudge, MinuteBudget
from generators.llm import REJECTION_REASONS, REPLY_SCHEMA, TECHNIQUE, EndpointBackend, LLMGenerator, Variation
from generators.llm_client import (
    UNKNOWN_MODEL,
    ChatRequest,
    Endpoint,
    LLMClient,
    LLMUnavailable,
    StructuredOutput,
)
from generators.metrics import LLMMetrics
from generators.recipes import load_recipes, run_recipe
from generators.samples import Expected
from monitor.events import TrafficEvent
from monitor.incidents import DriftIncident
from monitor.judging import JudgeSampler, OverBudget
from monitor.metrics import MonitorMetrics
from tests.factories import make_incident, traffic_evidence

pytestmark = pytest.mark.slow  # a 135M model on 2 shared cores: seconds per call


def metric(metrics: LLMMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def endpoint(base_url: str, **options: object) -> Endpoint:
    return Endpoint(base_url, structured_output=StructuredOutput.JSON_OBJECT, **options)


def incident() -> DriftIncident:
    """An input-shift incident whose evidence is real (redacted) ShareGPT traffic."""
    return make_incident(id="llm-inc", kind="input-shift", evidence=traffic_evidence(12, seed=5, prompt_chars=300))


def test_chat_completion_from_smollm2(llm_server: str) -> None:
    metrics = LLMMetrics(CollectorRegistry())

    async def ask() -> object:
        async with LLMClient(endpoint(llm_server), metrics=metrics) as client:
            return await client.chat([{"role": "user", "content": "Say hello."}], max_tokens=8, seed=1)

    completion = asyncio.run(ask())
    assert completion.text.strip()
    assert completion.model == SMOLLM2_ALIAS, "the model name comes from the endpoint's /models"
    assert 0 < completion.usage.completion_tokens <= 8
    assert completion.parsed is None, "no schema asked: the text is not decoded"
    assert metric(metrics, "driftloop_llm_tokens_total", model=SMOLLM2_ALIAS, kind="completion") == (
        completion.usage.completion_tokens
    )


def test_structured_output_matches_the_schema(llm_server: str) -> None:
    schema = {
        "type": "object",
        "properties": {"language": {"type": "string", "enum": ["python", "rust", "go"]}, "stars": {"type": "integer"}},
        "required": ["language", "stars"],
    }

    async def ask() -> object:
        async with LLMClient(endpoint(llm_server)) as client:
            messages = [{"role": "user", "content": "Which language is best for data science, and how many stars?"}]
            return await client.chat(messages, max_tokens=48, seed=3, schema=schema)

    completion = asyncio.run(ask())
    assert completion.finish_reason == "stop", completion.text
    jsonschema.validate(completion.parsed, schema)


def test_json_schema_dialect_is_refused_by_llama_cpp_with_a_clear_error(llm_server: str) -> None:
    """llama-cpp-python's server does not take ``json_schema``: the setting must say ``json_object`` for it."""

    async def ask() -> None:
        wrong = Endpoint(llm_server, structured_output=StructuredOutput.JSON_SCHEMA, max_retries=0)
        async with LLMClient(wrong) as client:
            await client.chat([{"role": "user", "content": "Hi"}], max_tokens=4, schema={"type": "object"})

    with pytest.raises(LLMUnavailable, match="HTTP 500"):
        asyncio.run(ask())


def test_generator_writes_schema_valid_samples_from_the_model(llm_server: str) -> None:
    drifted = incident()
    generator = LLMGenerator(EndpointBackend(endpoint(llm_server, concurrency=2)), per_call=2, max_tokens=200)
    requests = generator.requests(drifted, count=4, seed="11")

    batch = generator.generate(drifted, count=4, seed="11")

    assert batch.samples, f"no valid sample from the model; rejected: {batch.rejected}"
    assert len(batch.samples) <= 4
    assert set(batch.rejected) <= set(REJECTION_REASONS)
    assert batch.tokens_used > 0 and not batch.budget_exhausted
    real = {e.prompt.strip() for e in drifted.evidence}
    for sample in batch.samples:
        Variation.model_validate({"prompt": sample.prompt, "expected": sample.expected})
        assert sample.technique == TECHNIQUE and sample.generator == "llm/1.0"
        assert sample.expected in set(Expected) and sample.seed == "11"
        assert int(sample.metadata["request_seed"]) in {r.seed for r in requests}
        assert sample.metadata["model"] == SMOLLM2_ALIAS
        assert sample.prompt.strip() not in real, "verbatim copies of real prompts are dropped"
    assert list(batch) == batch.samples, "the batch iterates its samples (the Generator protocol)"
    jsonschema.Draft202012Validator.check_schema(REPLY_SCHEMA)


def test_token_budget_stops_the_job(llm_server: str) -> None:
    metrics = LLMMetrics(CollectorRegistry())
    generator = LLMGenerator(
        EndpointBackend(endpoint(llm_server, concurrency=1), metrics), token_budget=50, per_call=2, max_tokens=16
    )

    batch = generator.generate(incident(), count=6, seed="3")

    assert batch.budget_exhausted and batch.tokens_used >= 50
    assert metric(metrics, "driftloop_llm_requests_total", model=SMOLLM2_ALIAS, outcome="ok") == 1, (
        "one call spends the budget (the few-shot prompt alone is over 50 tokens); the other two are not made"
    )
    assert batch.rejected["llm_budget_exhausted"] == 2 * 2, "samples asked of the calls that were not made"
    assert batch.rejected.get("llm_not_json", 0) == 1, "16 tokens cut the one reply short of valid JSON"
    assert metric(metrics, "driftloop_llm_budget_exhausted_total") == 1


@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrency_overlaps_requests(llm_server: str, concurrency: int) -> None:
    """With concurrency N, N requests are on the wire before the first answer; with 1, one at a time."""
    order: list[str] = []

    async def sent(request: httpx.Request) -> None:
        if request.url.path.endswith("/chat/completions"):
            order.append("sent")

    async def answered(response: httpx.Response) -> None:
        if response.request.url.path.endswith("/chat/completions"):
            order.append("answered")

    async def ask_three() -> None:
        hooks = {"request": [sent], "response": [answered]}
        async with (
            httpx.AsyncClient(event_hooks=hooks) as http,
            LLMClient(endpoint(llm_server, concurrency=concurrency, model=SMOLLM2_ALIAS), http) as client,
        ):
            messages = [{"role": "user", "content": "Count to three."}]
            results = await client.complete_all([ChatRequest(messages, max_tokens=4, seed=s) for s in range(3)])
        assert all(r.usage.completion_tokens > 0 for r in results)

    asyncio.run(ask_three())
    if concurrency == 1:
        assert order == ["sent", "answered"] * 3
    else:
        assert order == ["sent"] * 3 + ["answered"] * 3


def test_a_server_that_is_down_gives_a_clear_error_and_counts_it() -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"
    metrics = LLMMetrics(CollectorRegistry())

    async def ask(model: str | None) -> None:
        async with LLMClient(Endpoint(down, model=model, max_retries=0, timeout_s=5), metrics=metrics) as client:
            await client.chat([{"role": "user", "content": "Hi"}], max_tokens=4)

    with pytest.raises(LLMUnavailable, match=f"LLM endpoint {down} unavailable: APIConnectionError"):
        asyncio.run(ask("m"))
    assert metric(metrics, "driftloop_llm_requests_total", model="m", outcome="error") == 1
    with pytest.raises(LLMUnavailable):
        asyncio.run(ask(None))  # the /models look-up fails first
    assert metric(metrics, "driftloop_llm_requests_total", model=UNKNOWN_MODEL, outcome="error") == 1

    generator = LLMGenerator(EndpointBackend(Endpoint(down, model="m", max_retries=0)))
    with pytest.raises(LLMUnavailable, match="unavailable"):
        generator.generate(incident(), count=4, seed="0")


def test_recipes_naming_llm_use_the_configured_endpoint(llm_server: str) -> None:
    """The worker's wiring: with ``DRIFTLOOP_LLM_BASE_URL`` set, a recipe naming llm runs it and reports its drops."""
    settings = Settings(_env_file=None, llm_base_url=llm_server, llm_structured_output="json_object")
    recipe = load_recipes().named("topic-coverage")
    assert "llm" in recipe.mix

    generated = run_recipe(incident(), recipe, total=10, seed="5", extra=llm_generators(settings))

    assert generated.generator_versions["llm"] == "1.0" and not generated.skipped
    from_llm = [s for s in generated.samples if s.technique == TECHNIQUE]
    llm_rejected = {reason: n for reason, n in generated.rejected.items() if reason.startswith("llm_")}
    assert from_llm or llm_rejected, "the llm share was neither generated nor counted as rejected"
    assert len(from_llm) <= recipe.counts(10)["llm"]

    without = run_recipe(incident(), recipe, total=10, seed="5", extra=llm_generators(Settings(_env_file=None)))
    assert "llm" in without.skipped and "llm" not in without.generator_versions


def short_pairs(count: int) -> list[tuple[str, str]]:
    """Real ShareGPT exchanges short enough to judge quickly on the CPU."""
    return [(p, r) for p, r in sharegpt_pairs() if len(p) + len(r) < 600][:count]


def test_the_judge_scores_real_responses_from_1_to_5(llm_server: str) -> None:
    metrics = LLMMetrics(CollectorRegistry())
    judge = LLMJudge(endpoint(llm_server), MinuteBudget(100_000), metrics)
    exchanges = [*short_pairs(3), ("What is the capital of France?", "Bananas are yellow.")]

    async def judged() -> list[float]:
        try:
            return [await judge.score(prompt, response) for prompt, response in exchanges]
        finally:
            await judge.close()

    scores = asyncio.run(judged())
    assert len(scores) == 4 and set(scores) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert metric(metrics, "driftloop_llm_requests_total", model=SMOLLM2_ALIAS, outcome="ok") == 4
    assert (
        0
        < judge.budget.current().used
        == metric(metrics, "driftloop_llm_tokens_total", model=SMOLLM2_ALIAS, kind="prompt")
        + metric(metrics, "driftloop_llm_tokens_total", model=SMOLLM2_ALIAS, kind="completion")
    )


def test_the_judges_budget_stops_its_calls_within_the_minute(llm_server: str) -> None:
    metrics = LLMMetrics(CollectorRegistry())
    judge = LLMJudge(endpoint(llm_server), MinuteBudget(1), metrics)  # the first call spends it
    [(prompt, response)] = short_pairs(1)

    async def twice() -> tuple[float, type[BaseException] | None]:
        try:
            first = await judge.score(prompt, response)
            try:
                await judge.score(prompt, response)
            except OverBudget as error:
                return first, type(error)
            return first, None
        finally:
            await judge.close()

    assert asyncio.run(twice())[1] is OverBudget
    assert metric(metrics, "driftloop_llm_requests_total", model=SMOLLM2_ALIAS, outcome="ok") == 1


def test_judged_scores_of_the_real_model_join_later_events(llm_server: str) -> None:
    """The monitor's sampler with the LLM judge: two verdicts awaited at most, the third sampled event is busy; the
    verdicts join the next events of their segment as ``judge_score``."""
    monitor_metrics = MonitorMetrics(CollectorRegistry())
    judge = LLMJudge(endpoint(llm_server), MinuteBudget(100_000), LLMMetrics(CollectorRegistry()))
    sampler = JudgeSampler(judge, rate=1.0, max_pending=2, metrics=monitor_metrics)
    exchanges = short_pairs(3)
    offered = [TrafficEvent(id=f"j{i}", model="m", prompt=p, response=r) for i, (p, r) in enumerate(exchanges)]
    later = [TrafficEvent(id=f"k{i}", model="m", prompt="hi", response="hello") for i in range(3)]

    async def scenario() -> list[dict]:
        try:
            sampler.offer(offered)
            await asyncio.gather(*sampler.pending)
            inputs: list[dict] = [{} for _ in later]
            sampler.attach(later, inputs)
            return inputs
        finally:
            await sampler.close()

    inputs = asyncio.run(scenario())
    assert [set(measured) for measured in inputs] == [{"judge_score"}, {"judge_score"}, set()]
    assert {inputs[0]["judge_score"], inputs[1]["judge_score"]} <= {1.0, 2.0, 3.0, 4.0, 5.0}
    verdict = lambda outcome: monitor_metrics.registry.get_sample_value(  # noqa: E731
        "driftloop_judge_verdicts_total", {"outcome": outcome}
    )
    assert (verdict("scored"), verdict("busy"), verdict("unreadable"), verdict("failed")) == (2, 1, 0, 0)
