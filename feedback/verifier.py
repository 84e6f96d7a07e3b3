"""Verification of reported candidate models as jobs: any worker takes one under a lease, runs it, and records
the verdict on the candidate, on the incident (``fix-verified`` / ``fix-rejected``), on a webhook
(``candidate.verified`` / ``candidate.rejected``) and in metrics.

The lease and its fencing are the generation jobs' (``feedback.leases``, key ``job-lease:candidate:<id>``): a
verifier that lost its lease writes nothing. A candidate that is not verified (its worker died, an attempt
failed) is swept by every worker's timer until ``max_attempts``; one that cannot be verified at all (no
production endpoint, its dataset or incident gone, its endpoint refused by the egress policy) fails at once.
The probes are built in a thread; the model calls are asynchronous, so the event loop is never held.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from core import keys
from feedback.candidates import Candidate, CandidateReport, CandidateState, candidates, report_candidate
from feedback.egress import EgressPolicy, ForbiddenDestination
from feedback.leases import Lease, LeaseLost
from feedback.manifest import DatasetManifest
from feedback.metrics import FeedbackMetrics
from feedback.registry import DatasetRegistry
from feedback.runner import worker_id
from feedback.verification import Side, Sizes, heldout_probes, run_side_by_side, verification_suite
from feedback.webhooks import Dispatcher
from generators.llm_client import Endpoint
from generators.recipes import RecipeBook, UnknownRecipe, load_recipes
from monitor.incidents import DriftIncident, IncidentStatus, InvalidTransition
from monitor.lifecycle import change_status
from monitor.records import incidents
from validation.run import StressConfig
from validation.suite import load_suite
from validation.verdict import Decision, Verdict

log = logging.getLogger(__name__)

RESULT_TYPE = "driftloop.candidate.reported"
RESULT_SCHEMA = "urn:driftloop:schema:finetune-result:v1"


class Unverifiable(RuntimeError):
    """A candidate that no retry can verify; carries why."""


class ResultData(BaseModel):
    dataset_id: str
    base_url: str
    model: str
    system_prompt: str | None = None


class FinetuneResult(BaseModel):
    """A ``finetune.results`` message (``schemas/finetune-result.v1.json``): CloudEvents 1.0, id = candidate id."""

    specversion: str
    id: str
    source: str
    type: str
    data: ResultData

    def report(self) -> CandidateReport:
        data = self.data
        return CandidateReport(
            candidate_id=self.id, base_url=data.base_url, model=data.model, system_prompt=data.system_prompt
        )


@dataclass
class CandidateVerifier:
    redis: Redis
    production: Endpoint | None
    """The production model (``stress_endpoint`` or ``llm_base_url``); None when neither is configured."""
    production_config: StressConfig
    dispatcher: Dispatcher
    policy: EgressPolicy
    recipes: RecipeBook = field(default_factory=load_recipes)
    stress_suite_path: Path | None = None
    sizes: Sizes = field(default_factory=Sizes)
    owner: str = field(default_factory=worker_id)
    lease_s: float = 30.0
    max_attempts: int = 3
    metrics: FeedbackMetrics = field(default_factory=FeedbackMetrics.default, repr=False)

    async def report(self, manifest: DatasetManifest, report: CandidateReport, source: str) -> tuple[Candidate, bool]:
        """Store a reported candidate for verification (see ``feedback.candidates.report_candidate``)."""
        candidate, created = await report_candidate(self.redis, manifest, report, source, self.policy)
        if created:
            self.metrics.candidates_reported.labels(source).inc()
        return candidate, created

    async def on_result(self, message: bytes, topic: str) -> Candidate | None:
        """A ``finetune.results`` message: its candidate stored, then verified here. None, with a log line, for a
        message that is not a result, or names an unknown dataset, a refused endpoint or a conflicting report."""
        try:
            result = FinetuneResult.model_validate_json(message)
            if result.type != RESULT_TYPE:
                raise ValueError(f"type {result.type!r}, not {RESULT_TYPE}")
            manifest = await DatasetRegistry(self.redis).get(result.data.dataset_id)
            if manifest is None:
                raise ValueError(f"no dataset {result.data.dataset_id}")
            candidate, _ = await self.report(manifest, result.report(), "finetune.results")
        except (ValidationError, ValueError) as error:  # ForbiddenDestination and CandidateConflict among them
            log.error("skipping a message on %s: %s", topic, error)
            return None
        return await self.run(candidate.id)

    async def sweep(self) -> list[Candidate]:
        """Verify every candidate still waiting whose verification no live lease covers."""
        done = []
        for raw in sorted(await self.redis.smembers(keys.CANDIDATES_ACTIVE)):
            if not await self.redis.exists(_lease_key(raw.decode())) and (found := await self.run(raw.decode())):
                done.append(found)
        return done

    async def run(self, candidate_id: str) -> Candidate | None:
        """One attempt at verifying the candidate; None when another worker holds it."""
        lease = Lease(self.redis, f"candidate:{candidate_id}", self.owner, self.lease_s)
        if not await lease.acquire():
            return None
        try:
            candidate = await candidates(self.redis).get(candidate_id)
            if candidate is None or candidate.finished:
                await self.redis.srem(keys.CANDIDATES_ACTIVE, candidate_id)
                return candidate
            if candidate.attempts >= self.max_attempts:
                return await self._failed(
                    candidate, lease, f"gave up after {candidate.attempts} attempts; {candidate.error}"
                )
            candidate.state, candidate.attempts = CandidateState.VERIFYING, candidate.attempts + 1
            await self._save(candidate, lease)
            started = time.perf_counter()
            try:
                async with lease.kept():
                    verdict = await self._verify(candidate)
            except Unverifiable as error:
                return await self._failed(candidate, lease, str(error))
            except LeaseLost:
                raise
            except Exception as error:  # whatever broke this attempt, the sweep retries it
                log.exception("verification of candidate %s, attempt %d", candidate_id, candidate.attempts)
                candidate.state, candidate.error = CandidateState.REPORTED, f"{type(error).__name__}: {error}"
                await self._save(candidate, lease)
                return candidate
            finally:
                self.metrics.candidate_seconds.observe(time.perf_counter() - started)
            return await self._decided(candidate, lease, verdict)
        except LeaseLost:
            log.warning("stopped verifying candidate %s: %s lost its lease", candidate_id, self.owner)
            return None
        finally:
            await lease.release()

    async def _verify(self, candidate: Candidate) -> Verdict:
        if self.production is None:
            raise Unverifiable("no production endpoint: set DRIFTLOOP_STRESS_ENDPOINT or DRIFTLOOP_LLM_BASE_URL")
        manifest = await DatasetRegistry(self.redis).get(candidate.dataset_id)
        incident = await incidents(self.redis).get(candidate.incident_id)
        if manifest is None or incident is None:
            raise Unverifiable(f"dataset {candidate.dataset_id} or incident {candidate.incident_id} is gone")
        try:
            await self.policy.resolve(candidate.base_url)  # again: the name may point elsewhere by now
        except (ForbiddenDestination, OSError) as error:
            raise Unverifiable(f"candidate endpoint refused: {error}") from error
        heldout, note = await asyncio.to_thread(heldout_probes, manifest)
        notes = [note] if note else []
        stress = await asyncio.to_thread(load_suite, self.stress_suite_path) if self.stress_suite_path else None
        if stress is None:
            notes.append("no stress suite configured (DRIFTLOOP_STRESS_SUITE_PATH): no stress families compared")
        suite = await asyncio.to_thread(
            verification_suite, incident, self._recipe(manifest, incident), heldout, stress, self.sizes
        )
        production = Side(self.production, self.production_config)
        endpoint = dataclasses.replace(
            self.production, base_url=candidate.base_url, model=candidate.model, api_key=None
        )
        config = dataclasses.replace(
            self.production_config, system_prompt=candidate.system_prompt or self.production_config.system_prompt
        )
        return await run_side_by_side(suite, production, Side(endpoint, config), notes)

    def _recipe(self, manifest: DatasetManifest, incident: DriftIncident):
        try:
            return self.recipes.named(manifest.lineage.recipe)
        except UnknownRecipe:
            return self.recipes.for_kind(incident.kind) or self.recipes.named(self.recipes.default)

    async def _decided(self, candidate: Candidate, lease: Lease, verdict: Verdict) -> Candidate:
        promoted = verdict.decision == Decision.PROMOTE
        candidate.state = CandidateState.VERIFIED if promoted else CandidateState.REJECTED
        candidate.verdict, candidate.error = verdict, None
        await self._save(candidate, lease)
        await self.redis.srem(keys.CANDIDATES_ACTIVE, candidate.id)
        self.metrics.candidate_verdicts.labels(verdict.decision).inc()
        for side, rate in (("production", verdict.incident.production), ("candidate", verdict.incident.candidate)):
            if rate is not None:
                self.metrics.candidate_incident_pass_rate.labels(side).set(rate.rate)
        status = IncidentStatus.FIX_VERIFIED if promoted else IncidentStatus.FIX_REJECTED
        note = f"candidate {candidate.id}: {verdict.decision}" + (
            f" ({'; '.join(verdict.reasons)})" if verdict.reasons else ""
        )
        incident = None
        try:
            changed = await change_status(
                self.redis, candidate.incident_id, status, f"verifier:{candidate.id}", note[:2000]
            )
            incident = changed[0] if changed else None
        except InvalidTransition as refused:
            log.warning(
                "incident %s stays %s after candidate %s: %s",
                refused.incident_id,
                refused.current,
                candidate.id,
                verdict.decision,
            )
        event = "candidate.verified" if promoted else "candidate.rejected"
        data = {**candidate.model_dump(mode="json"), "incident_status": incident.status if incident else None}
        await self.dispatcher.dispatch(event, f"{candidate.id}.{verdict.decision}", data)
        log.warning("candidate %s for incident %s: %s", candidate.id, candidate.incident_id, note)
        return candidate

    async def _failed(self, candidate: Candidate, lease: Lease, error: str) -> Candidate:
        candidate.state, candidate.error = CandidateState.FAILED, error
        await self._save(candidate, lease)
        await self.redis.srem(keys.CANDIDATES_ACTIVE, candidate.id)
        self.metrics.candidate_verdicts.labels("failed").inc()
        log.warning("candidate %s could not be verified: %s", candidate.id, error)
        return candidate

    async def _save(self, candidate: Candidate, lease: Lease) -> None:
        candidate.updated_at = datetime.now(UTC)
        await lease.write(keys.record(keys.CANDIDATE, candidate.id), candidate.model_dump_json())


def _lease_key(candidate_id: str) -> str:
    return keys.job_lease(f"candidate:{candidate_id}")
