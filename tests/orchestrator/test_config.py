"""Settings from the environment: defaults, overrides, clear errors, secrets kept secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from journeyman.orchestrator.config import ENVIRONMENT, ConfigError, Settings
from journeyman.orchestrator.credentials import load_or_create


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_env({})
    assert (settings.api_host, settings.api_port) == ("127.0.0.1", 8000)
    assert settings.data_dir == Path(".journeyman")
    assert settings.database_url is None and settings.temporal_address is None


def test_environment_values_are_read_and_typed() -> None:
    settings = Settings.from_env(
        {
            "JOURNEYMAN_API_PORT": "9001",
            "JOURNEYMAN_DATABASE_URL": "postgresql://u:hunter2@db/jm",
            "JOURNEYMAN_SMTP_SECURITY": "starttls",
            "JOURNEYMAN_DATA_DIR": "/srv/jm",
            "JOURNEYMAN_API_HOST": "",  # empty means unset
        }
    )
    assert settings.api_port == 9001 and settings.api_host == "127.0.0.1"
    assert settings.smtp_security == "starttls"
    assert settings.require_database_url() == "postgresql://u:hunter2@db/jm"
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"JOURNEYMAN_API_PORT": "eighty"}, "JOURNEYMAN_API_PORT"),
        ({"JOURNEYMAN_API_PORT": "70000"}, "JOURNEYMAN_API_PORT"),
        ({"JOURNEYMAN_SMTP_SECURITY": "tls"}, "JOURNEYMAN_SMTP_SECURITY"),
        ({"JOURNEYMAN_MAX_BODY_BYTES": "0"}, "JOURNEYMAN_MAX_BODY_BYTES"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


def test_worker_and_api_require_external_addresses() -> None:
    settings = Settings.from_env({})
    with pytest.raises(ConfigError, match="JOURNEYMAN_DATABASE_URL is not set"):
        settings.require_database_url()
    with pytest.raises(ConfigError, match="JOURNEYMAN_TEMPORAL_ADDRESS is not set"):
        settings.require_temporal_address()


def test_every_setting_has_one_variable() -> None:
    assert set(ENVIRONMENT) == set(Settings.model_fields)
    assert len(set(ENVIRONMENT.values())) == len(ENVIRONMENT)


def test_credentials_are_generated_once_and_kept_private(tmp_path: Path) -> None:
    settings = Settings.from_env({"JOURNEYMAN_DATA_DIR": str(tmp_path)})
    first = load_or_create(settings)
    again = load_or_create(settings)
    assert first.generated and not again.generated
    assert (first.write_key, first.admin_token) == (again.write_key, again.admin_token)
    assert first.write_key.startswith("wk_") and first.admin_token.startswith("adm_")
    assert (tmp_path / "credentials.json").stat().st_mode & 0o777 == 0o600
    assert first.write_key not in repr(first)


def test_credentials_from_the_environment_win(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "JOURNEYMAN_DATA_DIR": str(tmp_path),
            "JOURNEYMAN_WRITE_KEY": "fixed-key",
            "JOURNEYMAN_ADMIN_TOKEN": "fixed-token",
        }
    )
    creds = load_or_create(settings)
    assert (creds.write_key, creds.admin_token, creds.generated) == (
        "fixed-key",
        "fixed-token",
        False,
    )


def test_fixed_credentials_write_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "read-only-elsewhere"
    settings = Settings.from_env(
        {
            "JOURNEYMAN_DATA_DIR": str(data_dir),
            "JOURNEYMAN_WRITE_KEY": "k",
            "JOURNEYMAN_ADMIN_TOKEN": "t",
        }
    )
    assert load_or_create(settings).write_key == "k"
    assert not data_dir.exists()
