"""A fault for a scenario's worker processes: each look-up of the traffic log (``TrafficLog.refresh``) starts
``FAULT_LOOKUP_DELAY_S`` seconds late, as when a broker back without its data takes seconds to create the loop's
topics. A folder on the worker's ``PYTHONPATH``: Python imports this module as it starts."""

import asyncio
import os
import sys

from driftloop.log_identity import TrafficLog

_refresh = TrafficLog.refresh


DELAY = os.environ["FAULT_LOOKUP_DELAY_S"]


async def _late_refresh(self: TrafficLog) -> None:
    await asyncio.sleep(float(DELAY))
    await _refresh(self)


TrafficLog.refresh = _late_refresh
print(f"fault: the traffic log's look-ups start late, FAULT_LOOKUP_DELAY_S={DELAY}", file=sys.stderr)
