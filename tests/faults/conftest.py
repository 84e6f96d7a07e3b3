"""The fault suite's fixture: a :class:`~tests.faults.harness.Rig` of its own per scenario."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.embedded import ServiceUnavailable
from tests.faults.harness import FaultSettings, Rig


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Each phase's report on its test (``item.failed_call``: the scenario itself failed), for the fixture below."""
    report = yield
    if report.when == "call":
        item.failed_call = report.failed
    return report


@pytest.fixture
def rig(tmp_path: Path, require_services: bool, request: pytest.FixtureRequest) -> Iterator[Rig]:
    """Private services, workers and a webhook receiver; on the way out, every process the scenario started must
    be gone once the rig has stopped them (what is left is killed and fails the scenario). A failed scenario
    prints :meth:`Rig.report` (the jobs and the workers' logs), shown with its failure."""
    try:
        rig = Rig(tmp_path, FaultSettings())
    except ServiceUnavailable as exc:
        if require_services:
            pytest.fail(f"DRIFTLOOP_REQUIRE_SERVICES=1 but {exc}")
        pytest.skip(f"embedded services unavailable: {exc}")
    try:
        yield rig
    finally:
        if getattr(request.node, "failed_call", False):
            print(rig.report())
        left = rig.close()
    assert not left, f"left running after the scenario: {left}"
