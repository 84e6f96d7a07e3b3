"""The Faust table that detector state is checkpointed into, with writes that can be awaited.

A table write goes to Faust's producer buffer, and Faust flushes that producer before it commits offsets; but its
flush gives up on a message still queued after 0.1 s, so a commit could pass events whose checkpoint the broker
does not have yet. :meth:`CheckpointTable.written` waits for the broker's acknowledgement of every write made so
far: the worker awaits it before a batch's events are acknowledged, so no commit ever covers an event that is not
in a durable checkpoint.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.types import FutureMessage


class CheckpointTable(faust.Table):
    """A :class:`faust.Table` that keeps each changelog write's future until :meth:`written` awaits it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unwritten: list[FutureMessage] = []

    def send_changelog(self, *args: Any, **kwargs: Any) -> FutureMessage:
        future = super().send_changelog(*args, **kwargs)
        self._unwritten.append(future)
        return future

    async def written(self) -> None:
        """Return once the broker has every write made so far; raise the first write's error, if one failed."""
        futures, self._unwritten = self._unwritten, []
        await asyncio.gather(*futures)
