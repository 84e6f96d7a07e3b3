"""The feedback package's HTTP surface: jobs, datasets and webhooks, one module per resource."""

from fastapi import APIRouter

from feedback import datasets_api, jobs_api, publish_api, webhooks_api

router = APIRouter()
for resource in (jobs_api, datasets_api, publish_api, webhooks_api):
    router.include_router(resource.router)
