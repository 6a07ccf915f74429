"""The web settings (MQL_CORS_ORIGINS, MQL_TRUSTED_PROXIES, MQL_RATE_*, timeouts): parsed,
defaulted, and refused with the variable's name when wrong."""

from __future__ import annotations

import pytest

from mqlengine.api.middleware import exact_origin
from mqlengine.errors import ConfigError
from mqlengine.settings import Settings, WebSettings


def test_web_settings_from_the_environment() -> None:
    web = Settings.from_env(
        {
            "MQL_CORS_ORIGINS": "https://www.example.com, https://app.example.com",
            "MQL_TRUSTED_PROXIES": "127.0.0.1,10.0.0.0/8",
            "MQL_RATE_INGEST_PER_KEY": "250",
            "MQL_RATE_READ_PER_ADDRESS": "0",
            "MQL_HEADER_TIMEOUT": "2.5",
        }
    ).web
    assert web.cors_origins == ("https://www.example.com", "https://app.example.com")
    assert web.trusted_proxies == ("127.0.0.1", "10.0.0.0/8")
    assert web.rate_ingest_per_key == 250
    assert web.rate_read_per_address == 0
    assert web.rate_ingest_per_address == WebSettings().rate_ingest_per_address
    assert web.header_timeout == 2.5
    assert web.body_timeout == 10
    defaults = Settings.from_env({}).web
    assert defaults.cors_origins == () and defaults.trusted_proxies == ()


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("MQL_RATE_INGEST_PER_KEY", "fast", "is not a number"),
        ("MQL_RATE_AUTH_FAILURES", "-1", "finite number >= 0"),
        ("MQL_BODY_TIMEOUT", "0", "more than 0 seconds"),
        ("MQL_HEADER_TIMEOUT", "inf", "finite number"),
    ],
)
def test_bad_web_settings_name_the_variable(name: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env({name: value})
    assert name in error.value.message and says in error.value.message


@pytest.mark.parametrize(
    "origin",
    ["*", "https://*.example.com", "www.example.com", "https://example.com/app", "ftp://x.io"],
)
def test_cors_origins_must_be_exact(origin: str) -> None:
    with pytest.raises(ConfigError) as error:
        exact_origin(origin)
    assert "exact origin" in error.value.message


def test_cors_origins_are_normalised() -> None:
    assert exact_origin(" https://WWW.Example.com/ ") == "https://www.example.com"
    assert exact_origin("http://localhost:3000") == "http://localhost:3000"
