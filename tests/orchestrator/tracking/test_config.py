"""Link settings are checked at start-up: a production process refuses to start without them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from journeyman.orchestrator.config import ConfigError
from journeyman.orchestrator.tracking import (
    InvalidToken,
    LinkToken,
    TrackingConfigError,
    tracking_config,
)

SECRET = "a-link-secret-of-at-least-32-characters"


def test_production_needs_a_secret() -> None:
    with pytest.raises(ConfigError, match="JOURNEYMAN_LINK_SECRET is not set"):
        tracking_config(secret=None, public_url="https://links.shop.test")
    with pytest.raises(TrackingConfigError, match="JOURNEYMAN_LINK_SECRET is not set"):
        tracking_config(secret=" , ", public_url="https://links.shop.test")


def test_short_secrets_are_refused_without_showing_them() -> None:
    with pytest.raises(TrackingConfigError, match="secret number 2 is shorter") as raised:
        tracking_config(secret=f"{SECRET},tooshort", public_url="https://links.shop.test")
    assert "tooshort" not in str(raised.value)


def test_production_needs_an_https_public_url() -> None:
    with pytest.raises(TrackingConfigError, match="JOURNEYMAN_PUBLIC_URL is not set"):
        tracking_config(secret=SECRET, public_url=None)
    with pytest.raises(TrackingConfigError, match="must be an https:// URL"):
        tracking_config(secret=SECRET, public_url="http://links.shop.test")
    for bad in ("links.shop.test", "ftp://links.shop.test", "https://links.shop.test/?a=1"):
        with pytest.raises(TrackingConfigError, match="JOURNEYMAN_PUBLIC_URL must"):
            tracking_config(secret=SECRET, public_url=bad)


def test_a_configuration_keeps_its_secret_to_itself() -> None:
    config = tracking_config(secret=SECRET, public_url="https://shop.test/links/")
    assert config.public_url == "https://shop.test/links"
    assert SECRET not in repr(config)


def test_development_runs_with_a_throwaway_secret_and_plain_http(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        config = tracking_config(secret=None, public_url="http://127.0.0.1:8000", development=True)
    assert "random secret" in caplog.text
    assert config.public_url == "http://127.0.0.1:8000"
    other = tracking_config(secret=None, public_url="http://127.0.0.1:8000", development=True)
    assert repr(config.signer) == repr(other.signer)  # both hide their secret ...
    text = config.signer.sign(LinkToken("open", "k", "c", datetime.now(UTC)))
    with pytest.raises(InvalidToken):  # ... which is a fresh one per process
        other.signer.verify(text, kind="open")
