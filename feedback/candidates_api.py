"""Candidate models over HTTP: training systems report them for a dataset version; anyone with ``read`` follows
their verification and verdict."""

from __future__ import annotations

from fastapi import APIRouter, Response

from core.api import Limit, Offset, RedisDep, found, list_page, problem
from feedback.candidates import Candidate, CandidateReport, candidate_policy, candidates, report_candidate
from feedback.deps import SettingsDep
from feedback.metrics import FeedbackMetrics
from feedback.registry import DatasetRegistry

router = APIRouter(prefix="/v1", tags=["candidates"])


@router.post(
    "/datasets/{dataset_id}/candidates",
    status_code=202,
    responses={
        200: {"model": Candidate, "description": "reported before with the same fields: the stored candidate"},
        409: problem("the candidate id was reported with another dataset, endpoint, model or system prompt"),
        422: problem("the endpoint is not a public address and the candidate settings do not allow it"),
    },
)
async def report(
    dataset_id: str, body: CandidateReport, redis: RedisDep, settings: SettingsDep, response: Response
) -> Candidate:
    """Report a model trained on the version: an OpenAI-compatible endpoint and model name (and the system prompt
    it is deployed with, if not production's). A worker verifies it against production within
    ``job_sweep_interval_s``; the verdict appears here, on the incident and as a ``candidate.*`` webhook.
    Idempotent by ``candidate_id``."""
    manifest = found(await DatasetRegistry(redis).get(dataset_id), "dataset", dataset_id)
    policy = candidate_policy(settings.candidate_allow_private_networks, settings.candidate_allowed_networks)
    candidate, created = await report_candidate(redis, manifest, body, "api", policy)
    if created:
        FeedbackMetrics.default().candidates_reported.labels("api").inc()
    else:
        response.status_code = 200
    return candidate


@router.get("/datasets/{dataset_id}/candidates")
async def list_dataset_candidates(
    dataset_id: str, redis: RedisDep, response: Response, limit: Limit = 50, offset: Offset = 0
) -> list[Candidate]:
    """The candidates reported for a version, newest first (none for an unknown version)."""
    return await list_page(candidates(redis), response, limit, offset, lambda c: c.dataset_id == dataset_id)


@router.get("/candidates")
async def list_candidates(
    redis: RedisDep, response: Response, incident_id: str | None = None, limit: Limit = 50, offset: Offset = 0
) -> list[Candidate]:
    """Candidates, newest first; ``incident_id`` keeps those trained for that incident."""
    keep = None if incident_id is None else (lambda c: c.incident_id == incident_id)
    return await list_page(candidates(redis), response, limit, offset, keep)


@router.get("/candidates/{candidate_id}")
async def get_candidate(candidate_id: str, redis: RedisDep) -> Candidate:
    """A candidate, with its verdict once verified: the decision, the reasons, and each family's pass rate on
    production and on the candidate with Wilson intervals."""
    return found(await candidates(redis).get(candidate_id), "candidate", candidate_id)
