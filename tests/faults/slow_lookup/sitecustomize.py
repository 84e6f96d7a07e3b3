"""A fault for a scenario's worker processes: each look-up of the traffic log (``TrafficLog.refresh``) starts
``FAULT_LOOKUP_DELAY_S`` seconds late, as when a broker back without its data takes seconds to create the loop's
topics. A folder on the worker's ``PYTHONPATH``: Python imports this module as it starts (without that variable,
as when pytest collects it, it changes nothing)."""

import asyncio
import os
import sys

from driftloop.log_identity import TrafficLog

DELAY = os.environ.get("FAULT_LOOKUP_DELAY_S")

if DELAY:
    _refresh = TrafficLog.refresh

    async def _late_refresh(self: TrafficLog) -> bool:
        await asyncio.sleep(float(DELAY))
        return await _refresh(self)

    TrafficLog.refresh = _late_refresh
    print(f"fault: the traffic log's look-ups start late, FAULT_LOOKUP_DELAY_S={DELAY}", file=sys.stderr)
