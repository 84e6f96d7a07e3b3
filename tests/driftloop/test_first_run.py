"""The first-run flow: ``driftloop up`` in one terminal, every other verb in another with nothing set."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from devtools.embedded import free_port, stop_process
from driftloop.cli import app
from driftloop.services_file import SERVICES_FILE, write

ROOT = Path(__file__).resolve().parents[2]


def _bare_env() -> dict[str, str]:
    """This environment without any DRIFTLOOP_ variable, importing this checkout's code from any directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    return {**env, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}


def _verb(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftloop", *args],
        cwd=cwd,
        env=_bare_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


class _Up:
    """``driftloop up`` as a child process whose output is collected as it comes."""

    def __init__(self, cwd: Path, api_port: int) -> None:
        self.output = ""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "driftloop", "up"],
            cwd=cwd,
            env={**_bare_env(), "DRIFTLOOP_API_PORT": str(api_port)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output += line

    def wait_for(self, pattern: str, timeout: float = 90.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if match := re.search(pattern, self.output):
                return match
            assert self.process.poll() is None, f"driftloop up exited:\n{self.output}"
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} in:\n{self.output}")


def _wait_until_served(url: str, token: str) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(f"{url}/v1/whoami", headers={"Authorization": f"Bearer {token}"})
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.3)


def _accepted(status_output: str) -> int:
    match = re.search(r"accepted\s*│\s*(\d+)", status_output)
    return int(match.group(1)) if match else 0


def test_up_then_replay_status_and_token_create_with_no_variables_set(tmp_path) -> None:
    api_port = free_port()
    up = _Up(tmp_path, api_port)
    services = tmp_path / SERVICES_FILE
    try:
        console_url = up.wait_for(r"Console (http://127\.0\.0\.1:\d+/console) ").group(1)
        token = up.wait_for(r"shown this once[^\n]*\n(dl_\S+)\n").group(1)
        assert console_url == f"http://127.0.0.1:{api_port}/console"
        assert stat.S_IMODE(services.stat().st_mode) == 0o600
        assert "DRIFTLOOP_REDIS_URL=redis://127.0.0.1:" in services.read_text(encoding="utf-8")
        whoami = _wait_until_served(f"http://127.0.0.1:{api_port}", token)
        assert whoami.status_code == 200 and whoami.json()["name"] == "admin"
        login = httpx.post(f"{console_url}/login", data={"token": token})
        assert login.status_code == 303 and login.headers["location"].endswith("/console/incidents"), login.text
        assert "httponly" in login.headers["set-cookie"].lower(), "the printed token opens a console session"

        second = _verb(tmp_path, "up")
        assert second.returncode == 1 and f"already runs here (pid {up.process.pid})" in second.stdout

        assert _verb(tmp_path, "traffic", "traffic.jsonl", "--events", "300").returncode == 0
        replayed = _verb(tmp_path, "replay", "traffic.jsonl")
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        deadline = time.monotonic() + 90
        while (accepted := _accepted((status := _verb(tmp_path, "status")).stdout)) < 300:
            assert status.returncode == 0, status.stdout + status.stderr
            assert time.monotonic() < deadline, f"the worker counted {accepted} of 300:\n{status.stdout}"
            time.sleep(1)
        assert accepted == 300

        created = _verb(tmp_path, "token", "create", "--name", "oncall", "--scope", "read")
        assert created.returncode == 0, created.stdout + created.stderr
        read_token = created.stdout.strip().splitlines()[-1]
        reader = httpx.get(f"http://127.0.0.1:{api_port}/v1/whoami", headers={"Authorization": f"Bearer {read_token}"})
        assert reader.json()["scopes"] == ["read"]
    finally:
        up.process.send_signal(signal.SIGTERM)
        up.process.wait(timeout=30)
    assert not services.exists()
    gone = _verb(tmp_path, "status")
    assert gone.returncode == 2 and "run `driftloop up` in this directory" in gone.stdout

    again = _Up(tmp_path, free_port())
    try:
        again.wait_for(r"API tokens: driftloop token create")
        assert "shown this once" not in again.output, "a first admin token is printed once, not at every start"
    finally:
        stop_process(again.process, timeout=30)


def test_a_services_file_left_by_a_killed_up_is_ignored_and_named(tmp_path, monkeypatch) -> None:
    from driftloop.settings import get_settings

    for name in ("DRIFTLOOP_KAFKA_BOOTSTRAP", "DRIFTLOOP_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write(SERVICES_FILE, {"DRIFTLOOP_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    SERVICES_FILE.write_text(SERVICES_FILE.read_text().replace(f"pid {os.getpid()}", f"pid {gone.pid}"))
    get_settings.cache_clear()
    try:
        assert get_settings().redis_url is None
        result = CliRunner().invoke(app, ["status"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert f"left by a `driftloop up` (pid {gone.pid}) that is gone" in " ".join(result.output.split())
