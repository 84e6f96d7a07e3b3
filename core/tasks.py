"""Loops that run until their task is cancelled, even when a library swallows the cancellation.

redis-py can swallow a ``CancelledError`` that arrives while a command waits on the server (redis/redis-py
#2028, #2551): the await returns as if nothing happened, and a ``while True`` loop around it then runs forever,
so whoever awaits the cancelled task hangs. Python counts a cancellation request until it is handled
(``Task.cancelling``), so a loop that checks :func:`cancel_requested` stops either way.

>>> import asyncio
>>> async def swallowing_loop() -> str:
...     while not cancel_requested():
...         try:
...             await asyncio.sleep(1)
...         except asyncio.CancelledError:  # what the library does
...             pass
...     return "stopped"
>>> async def main() -> str:
...     task = asyncio.create_task(swallowing_loop())
...     await asyncio.sleep(0)
...     task.cancel()
...     return await task
>>> asyncio.run(main())
'stopped'
"""

from __future__ import annotations

import asyncio


def cancel_requested() -> bool:
    """Whether the running task has been asked to stop (a cancellation not yet handled)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
