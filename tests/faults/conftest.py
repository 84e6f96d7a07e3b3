"""The fault suite's fixture: a :class:`~tests.faults.harness.Rig` of its own per scenario."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.embedded import ServiceUnavailable
from tests.faults.harness import FaultSettings, Rig


@pytest.fixture
def rig(tmp_path: Path, require_services: bool) -> Iterator[Rig]:
    """Private services, workers and a webhook receiver; on the way out, every process the scenario started must
    be gone once the rig has stopped them (what is left is killed and fails the scenario)."""
    try:
        rig = Rig(tmp_path, FaultSettings())
    except ServiceUnavailable as exc:
        if require_services:
            pytest.fail(f"DRIFTLOOP_REQUIRE_SERVICES=1 but {exc}")
        pytest.skip(f"embedded services unavailable: {exc}")
    try:
        yield rig
    finally:
        left = rig.close()
    assert not left, f"left running after the scenario: {left}"
