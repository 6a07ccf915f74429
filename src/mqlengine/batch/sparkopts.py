"""Where the Spark engine runs: a local Spark, a standalone cluster (``spark://…``) or
Spark Connect (``sc://…``). CLI commands that take ``--engine spark`` read
``--spark-master`` / ``--spark-remote`` through :func:`spark_options` and make the engine
with :func:`spark_engine`."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mqlengine.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from mqlengine.batch.spark_engine import SparkEngine

# Modest defaults for a laptop: a small driver, few shuffle partitions, no web UI.
DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


@dataclass(frozen=True)
class SparkOptions:
    master: str | None = None  # local[*], local[N] or spark://host:port
    remote: str | None = None  # sc://host:port (Spark Connect)
    conf: dict[str, str] = field(default_factory=dict)


def spark_options(
    master: str | None = None, remote: str | None = None, conf: list[str] | None = None
) -> SparkOptions:
    """Check ``--spark-master`` / ``--spark-remote`` / ``--spark-conf KEY=VALUE`` values."""
    if master and remote:
        raise ConfigError("--spark-master and --spark-remote exclude each other: give one")
    if master and not (master.startswith(("local", "spark://", "yarn", "k8s://"))):
        raise ConfigError(
            f"--spark-master {master!r}: expected local[*], local[N] or spark://host:port"
        )
    if remote and not remote.startswith("sc://"):
        raise ConfigError(f"--spark-remote {remote!r}: expected sc://host:port")
    settings: dict[str, str] = {}
    for item in conf or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--spark-conf {item!r}: expected KEY=VALUE")
        settings[key.strip()] = value
    return SparkOptions(master, remote, settings)


def find_java_home() -> str | None:
    """JAVA_HOME, else the JDK/JRE behind ``java`` on the PATH."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    if java is None:
        return None
    return str(Path(java).resolve().parent.parent)


def make_session(
    *, master: str | None = None, remote: str | None = None, conf: dict[str, str] | None = None
) -> SparkSession:
    """A SparkSession for the engine (an existing active one is reused by Spark)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "the Spark engine needs PySpark: pip install 'mqlengine[spark]'"
        ) from None
    if remote:
        return SparkSession.builder.remote(remote).getOrCreate()
    java_home = find_java_home()
    if java_home is None:
        raise ConfigError(
            "the Spark engine needs Java 17 or later (set JAVA_HOME or install a JRE)"
        )
    os.environ.setdefault("JAVA_HOME", java_home)
    builder = SparkSession.builder.master(master or "local[*]").appName("mqlengine")
    for key, value in {**DEFAULT_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def spark_engine(options: SparkOptions) -> SparkEngine:
    from mqlengine.batch.spark_engine import SparkEngine

    return SparkEngine(master=options.master, remote=options.remote, conf=options.conf)
