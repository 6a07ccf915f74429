"""Settings from the environment, read when asked (never at import time)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mqlengine.store.db import DEFAULT_URL


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_URL
    definition_path: Path = Path("mql.yaml")
    write_keys: tuple[str, ...] = field(default_factory=tuple)
    firmographics_csv: Path | None = None  # MQL_FIRMOGRAPHICS_CSV: domain → company facts

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        keys = tuple(k.strip() for k in env.get("MQL_WRITE_KEYS", "").split(",") if k.strip())
        return cls(
            database_url=env.get("MQL_DATABASE_URL", DEFAULT_URL),
            definition_path=Path(env.get("MQL_DEFINITION", "mql.yaml")),
            write_keys=keys,
            firmographics_csv=Path(env["MQL_FIRMOGRAPHICS_CSV"])
            if env.get("MQL_FIRMOGRAPHICS_CSV")
            else None,
        )
