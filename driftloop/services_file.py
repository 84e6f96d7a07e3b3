"""Where ``driftloop up``'s services listen, written for the other verbs run in the same directory.

``driftloop up`` writes ``.driftloop/up/services.env`` (owner-only) while it runs and removes it on the way out;
:class:`~driftloop.settings.Settings` reads it below ``.env`` and the environment, so ``driftloop replay``,
``status`` or ``token create`` in another terminal reach the same broker and Redis with nothing set. The first
line names the process that wrote it, so a file left by a killed ``up`` is recognised as stale.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "services.env"
>>> write(path, {"DRIFTLOOP_REDIS_URL": "redis://127.0.0.1:6390/0"})
>>> writer_pid(path) == os.getpid(), oct(path.stat().st_mode & 0o777)
(True, '0o600')
>>> stale_writer(path) is None
True
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

SERVICES_FILE = Path(".driftloop/up/services.env")
_HEADER = "# written by `driftloop up`, pid "


def write(path: Path, variables: Mapping[str, str]) -> None:
    """Write ``variables`` as ``NAME=value`` lines, readable by the owner only, headed by this process's pid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    lines = [f"{_HEADER}{os.getpid()}; removed when it stops", *(f"{k}={v}" for k, v in variables.items())]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


@contextlib.contextmanager
def written(path: Path, variables: Mapping[str, str]) -> Iterator[Path]:
    """:func:`write` the file for the duration of the block, then remove it."""
    write(path, variables)
    try:
        yield path
    finally:
        if writer_pid(path) == os.getpid():
            path.unlink(missing_ok=True)


def writer_pid(path: Path) -> int | None:
    """The pid of the ``driftloop up`` that wrote ``path``; ``None`` when there is no such file."""
    try:
        first = path.read_text(encoding="utf-8").partition("\n")[0]
    except FileNotFoundError:
        return None
    digits = first.removeprefix(_HEADER).partition(";")[0]
    return int(digits) if first.startswith(_HEADER) and digits.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_writer(path: Path) -> int | None:
    """The pid of the ``driftloop up`` that wrote ``path`` if it still runs, else ``None``."""
    pid = writer_pid(path)
    return pid if pid is not None and _alive(pid) else None


def stale_writer(path: Path) -> int | None:
    """The pid of the ``driftloop up`` that wrote ``path`` and has gone without removing it (killed), else ``None``."""
    pid = writer_pid(path)
    return pid if pid is not None and not _alive(pid) else None
