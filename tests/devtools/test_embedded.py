import pytest
from pydantic import SecretStr

from core.secrets import new_key
from devtools.embedded import settings_env
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
