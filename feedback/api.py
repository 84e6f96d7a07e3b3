"""The feedback package's HTTP surface: jobs, datasets, candidates and webhooks, one module per resource."""

from fastapi import APIRouter

from feedback import candidates_api, datasets_api, jobs_api, publish_api, webhooks_api

router = APIRouter()
for resource in (jobs_api, datasets_api, candidates_api, publish_api, webhooks_api):
    router.include_router(resource.router)
