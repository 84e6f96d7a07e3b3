"""A logging filter that summarises a library's repeated lines: while the broker is down, aiokafka logs each
failed connection, metadata update and fetch (about 70 ERROR lines a second), which buries everything else.

>>> import logging
>>> now = [0.0]
>>> repeats = Repeats(("aiokafka",), every_s=30, clock=lambda: now[0])
>>> def line(name: str) -> logging.LogRecord:
...     return logging.LogRecord(name, logging.ERROR, __file__, 1, "Unable connect to node %s", (1,), None)
>>> [repeats.filter(line("aiokafka.conn")) for _ in range(3)], repeats.filter(line("driftloop.worker"))
([True, False, False], True)
>>> now[0] = 31.0
>>> record = line("aiokafka.conn")
>>> repeats.filter(record), record.getMessage()
(True, 'Unable connect to node 1 (2 more like it in the last 31 s)')
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

VERDICT = "driftloop_repeats"
"""Attribute of a record that the filter has judged: one record met by several handlers is judged once."""


class Repeats(logging.Filter):
    """Lets through the first record of each kind (logger and message template) of the loggers under
    ``prefixes``, then one every ``every_s`` seconds, saying how many like it were held back meanwhile; records
    of other loggers all pass."""

    def __init__(
        self, prefixes: tuple[str, ...], every_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if every_s <= 0:
            raise ValueError(f"every_s must be positive, not {every_s}")
        super().__init__()
        self.prefixes, self.every_s, self.clock = prefixes, every_s, clock
        self.kinds: dict[tuple[str, str], tuple[float, int]] = {}
        """(logger, template) → when one was last let through, how many were held back since."""

    def filter(self, record: logging.LogRecord) -> bool:
        verdict = getattr(record, VERDICT, None)
        if verdict is None:
            verdict = self._judge(record)
            setattr(record, VERDICT, verdict)
        return verdict

    def _judge(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        kind, now = (record.name, str(record.msg)), self.clock()
        shown, held = self.kinds.get(kind, (None, 0))
        if shown is not None and now - shown < self.every_s:
            self.kinds[kind] = (shown, held + 1)
            return False
        self.kinds[kind] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like it in the last {now - shown:.0f} s)"
        return True
