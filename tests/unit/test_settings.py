"""Settings read from the environment: the writer's memory bound."""

from __future__ import annotations

import pytest

from mqlengine.errors import ConfigError
from mqlengine.settings import DEFAULT_WRITER_MEMORY_MB, Settings


def test_the_writer_memory_bound_comes_from_the_environment() -> None:
    assert Settings.from_env({}).writer_memory_mb == DEFAULT_WRITER_MEMORY_MB
    assert Settings.from_env({"MQL_WRITER_MEMORY_MB": " 64 "}).writer_memory_mb == 64


@pytest.mark.parametrize("value", ["lots", "0", "-5", "1.5"])
def test_a_bad_writer_memory_bound_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="MQL_WRITER_MEMORY_MB"):
        Settings.from_env({"MQL_WRITER_MEMORY_MB": value})
