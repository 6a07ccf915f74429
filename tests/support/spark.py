"""Spark for the tests: a local session, or a real standalone cluster — a master and one
worker on loopback, started from the PySpark distribution's own ``spark-class`` and torn
down afterwards. Small memory settings: the suite runs on a shared 2-core machine."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOCAL_CONF = {
    "spark.driver.memory": "768m",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    # the test data are tiny: interpreting the (large) compiled expressions is faster than
    # generating and compiling Java for them (about 2.5x on this machine)
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}
CLUSTER_CONF = {**LOCAL_CONF, "spark.executor.memory": "512m", "spark.cores.max": "1"}


class SparkUnavailable(RuntimeError):
    pass


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _environment(tmp: Path) -> dict[str, str]:
    from mqlengine.batch.sparkopts import find_java_home

    java_home = find_java_home()
    if java_home is None:
        raise SparkUnavailable("no Java: install a JRE (scripts/system-deps.sh does)")
    env = dict(os.environ)
    env.update(
        JAVA_HOME=java_home,
        SPARK_HOME=str(spark_home()),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_DAEMON_MEMORY="256m",
        SPARK_WORKER_DIR=str(tmp / "work"),
        SPARK_LOG_DIR=str(tmp / "logs"),
        SPARK_NO_DAEMONIZE="1",
    )
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as answer:
            state: dict[str, Any] = json.load(answer)
    except OSError:
        return 0
    return int(state.get("aliveworkers", 0))


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def standalone_cluster(tmp: Path, *, timeout: float = 120.0) -> Iterator[str]:
    """A master and a worker (1 core, 768 MB) on 127.0.0.1; yields the master URL."""
    env = _environment(tmp)
    (tmp / "logs").mkdir(parents=True, exist_ok=True)
    spark_class = str(spark_home() / "bin" / "spark-class")
    port, ui_port = _free_port(), _free_port()
    master_url = f"spark://127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        master_log = stack.enter_context((tmp / "logs" / "master.log").open("wb"))
        master = subprocess.Popen(
            [
                *(spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"),
                *("--port", str(port), "--webui-port", str(ui_port)),
            ],
            env=env,
            stdout=master_log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(_stop, master)
        worker_log = stack.enter_context((tmp / "logs" / "worker.log").open("wb"))
        worker = subprocess.Popen(
            [
                *(spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1"),
                *("--cores", "1", "--memory", "768m", "--webui-port", str(_free_port())),
                master_url,
            ],
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(_stop, worker)
        deadline = time.monotonic() + timeout
        while _alive_workers(ui_port) < 1:
            for name, process in (("master", master), ("worker", worker)):
                if process.poll() is not None:
                    log = (tmp / "logs" / f"{name}.log").read_text(errors="replace")[-2000:]
                    raise SparkUnavailable(f"the Spark {name} exited: {log}")
            if time.monotonic() > deadline:
                raise SparkUnavailable(f"no worker registered with {master_url} in {timeout:.0f}s")
            time.sleep(0.5)
        yield master_url


def session(master: str, conf: dict[str, str]) -> Any:
    from mqlengine.batch.sparkopts import make_session

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = make_session(master=master, conf=conf)
    spark.sparkContext.setLogLevel("ERROR")
    return spark
