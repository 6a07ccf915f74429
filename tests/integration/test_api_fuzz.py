"""Schemathesis against a real ``mql serve`` and its own ``/openapi.json``, with every check.

All four phases run: the schema's examples, the coverage phase (boundary and invalid
values of every parameter), fuzzing (``FUZZ_EXAMPLES`` generated requests per operation)
and the stateful phase (operations chained: create a rep, read it, …). The server writes
to a throw-away SQLite database. Required: no 5xx, every answer's status, headers and body
as the schema documents them, schema-invalid input refused, and schema-valid input
accepted, or refused with 400 for a rule the schema cannot express (a time outside
1900–9000, an unknown time zone, a message the definition's checks reject, a rep without
a team).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.localserver import BENCH_LIMITS, LocalServer, local_server
from support.paths import EXAMPLE

pytestmark = pytest.mark.slow

FUZZ_EXAMPLES = 25  # per operation: the run stays within ~2 minutes on 2 cores
FUZZ_SEED = 20261203  # a fixed seed: a failure is reproducible, the run comparable
CONFIG = """
[checks]
positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404", "409"]
"""


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalServer, str]]:
    """A server on a throw-away database, and the one key the fuzzer sends: stored, marked
    server-side and holding every scope, so that every operation is reached past its
    scope check (the refusals themselves are tested route by route elsewhere)."""
    folder = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{folder}/fuzz.db"
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "mqlengine",
            "--database",
            url,
            "--definition",
            str(EXAMPLE),
            "keys",
            "create",
            "--scope",
            "write,admin,feedback",
            "--server-side",
            "--name",
            "fuzzer",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    key = json.loads(created.stdout)["key"]
    # limits out of the way: the fuzzer sends thousands of requests from one address
    limits = (*BENCH_LIMITS, "--rate-read-per-key", "0", "--rate-read-per-address", "0")
    limits = (*limits, "--rate-auth-failures", "0")  # it tries wrong keys on purpose
    with local_server(url, EXAMPLE, log=folder / "log", extra_args=limits) as running:
        yield running, key


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    fuzz_server: tuple[LocalServer, str], tmp_path: Path
) -> None:
    server, key = fuzz_server
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(FUZZ_EXAMPLES),
        "--seed",
        str(FUZZ_SEED),
        "--workers",
        "1",  # the suite shares two cores; the server process takes the other
        "--header",
        f"Authorization: Bearer {key}",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    run = subprocess.run(  # in tmp_path: Schemathesis keeps its cache in the working folder
        command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path
    )
    output = run.stdout + run.stderr
    generated = re.search(r"(\d+) generated", output)
    print(output[-1500:])  # shown with -rA or on failure: cases run and the summary
    assert run.returncode == 0, output[-20000:]
    assert generated is not None and int(generated.group(1)) > 500, output[-3000:]
    assert "Traceback" not in Path(server.log).read_text()
