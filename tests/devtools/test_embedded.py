import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from core.secrets import new_key
from devtools.embedded import LlamaServer, ServiceDied, ServiceUnavailable, free_port, redis_server, settings_env
from driftloop.settings import Settings


@pytest.mark.parametrize("proxies", [[], ["10.0.0.0/8", "2001:db8::/32"]])
def test_a_child_process_reads_back_the_settings_it_was_given(
    proxies: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    given = Settings(
        _env_file=None,
        kafka_bootstrap="127.0.0.1:9092",
        redis_url="redis://127.0.0.1:6379/0",
        trusted_proxies=proxies,
        secret_keys=SecretStr(new_key()),
    )
    for name, value in settings_env(given).items():
        monkeypatch.setenv(name, value)
    assert Settings(_env_file=None).model_dump() == given.model_dump()


def test_a_server_killed_by_an_illegal_instruction_is_reported_with_its_signal_and_what_to_do(tmp_path: Path) -> None:
    no_core = "import resource; resource.setrlimit(resource.RLIMIT_CORE, (0, 0))"
    crash = f"{no_core}; import os, signal; os.kill(os.getpid(), signal.SIGILL)"
    server = LlamaServer("http://127.0.0.1:1/v1", subprocess.Popen([sys.executable, "-c", crash]), tmp_path / "log")
    assert server.process.wait() == -signal.SIGILL
    with pytest.raises(ServiceDied, match=r"killed by SIGILL \(an illegal instruction.*make clean install"):
        server.check()


def test_a_running_server_passes_the_check(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        LlamaServer("http://127.0.0.1:1/v1", process, tmp_path / "log").check()
    finally:
        process.kill()
        process.wait()


def test_redis_restarted_on_its_port_keeps_its_data_and_its_log(tmp_path: Path, require_services: bool) -> None:
    port = free_port()
    try:
        with redis_server(tmp_path, port) as url:
            redis.Redis.from_url(url).set("kept", "yes")
    except ServiceUnavailable as exc:
        if require_services:
            pytest.fail(f"DRIFTLOOP_REQUIRE_SERVICES=1 but {exc}")
        pytest.skip(f"no redis-server: {exc}")
    with redis_server(tmp_path, port) as again:
        assert again == url
        assert redis.Redis.from_url(again).get("kept") == b"yes"
    assert (tmp_path / "redis.log").read_text().count("Ready to accept connections") == 2
