"""Publication over HTTP: the approval gate (``DRIFTLOOP_REQUIRE_APPROVAL``) and where each version stands."""

from __future__ import annotations

from fastapi import APIRouter, Response

from core.api import Limit, Offset, RedisDep, found, list_page
from feedback.deps import PublisherDep, lifespan
from feedback.publishing import Publication, PublicationState, publications
from feedback.registry import DatasetRegistry

router = APIRouter(prefix="/v1", tags=["datasets"], lifespan=lifespan)


@router.post("/datasets/{dataset_id}/approve")
async def approve_dataset(dataset_id: str, redis: RedisDep, publisher: PublisherDep) -> Publication:
    """Publish a version held in ``pending_approval``: one ``finetune.requests`` message and the
    ``dataset.published`` webhooks. Approving a published version again changes nothing; 409 when the
    version was never held or another approval of it is in flight."""
    manifest = found(await DatasetRegistry(redis).get(dataset_id), "dataset", dataset_id)
    return await publisher.approve(manifest)


@router.get("/datasets/{dataset_id}/publication")
async def get_publication(dataset_id: str, redis: RedisDep) -> Publication:
    """Whether a version waits for approval or was published, and when."""
    return found(await publications(redis).get(dataset_id), "publication of dataset", dataset_id)


@router.get("/publications")
async def list_publications(
    redis: RedisDep, response: Response, state: PublicationState | None = None, limit: Limit = 50, offset: Offset = 0
) -> list[Publication]:
    """Publication records, newest first; ``state=pending_approval`` lists what waits for approval."""
    keep = None if state is None else lambda publication: publication.state == state
    return await list_page(publications(redis), response, limit, offset, keep)
