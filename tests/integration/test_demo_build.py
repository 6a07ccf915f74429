"""Building the demo with bounded memory decides exactly as before.

The replay keeps the writer's memory between days and forgets only the rows the sales
steps and the weekly rescore wrote; the whole-base rescores keep none of the events they
read; the scorer's memo is cleared with the memory's bound; the generator's spool keeps
its full blocks in a file. None of that may change a decision: the stores a replay leaves
are compared, row for row, with one that forgets everything every day, and with one whose
memory is so small that it evicts persons and clears the memo all the time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import MetaData, select

from mqlengine.demo import run
from mqlengine.demo.generator import DaySpool
from mqlengine.demo.run import DemoReport, run_demo
from mqlengine.domain.scoring import Event
from mqlengine.ingest.qualify import EventCache
from mqlengine.ingest.writerstate import WriterState
from mqlengine.settings import Settings
from mqlengine.wiring import Wiring
from support.clock import NOW

# every table a decision lands in (ids included: the same rows in the same order)
DECISIONS = (
    "persons",
    "identities",
    "merges",
    "accounts",
    "stage_history",
    "score_snapshots",
    "assignments",
    "touches",
    "sla_breaches",
)


def _replay(folder: Path) -> tuple[DemoReport, dict[str, list[tuple[object, ...]]]]:
    folder.mkdir()
    settings = Settings(
        database_url=f"sqlite:///{folder / 'mql.db'}", definition_path=folder / "none.yaml"
    )
    wiring = Wiring(settings, clock=lambda: NOW)
    report = run_demo(wiring, now=NOW, persons_count=300, days=120, seed=7)
    reflected = MetaData()
    tables: dict[str, list[tuple[object, ...]]] = {}
    with wiring.db.read() as connection:
        reflected.reflect(connection, only=DECISIONS)
        for name in DECISIONS:
            table = reflected.tables[name]
            rows = connection.execute(select(table).order_by(*table.primary_key.columns))
            tables[name] = [tuple(row) for row in rows]
    wiring.close()
    return report, tables


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[object, ...]]]:
    report, tables = _replay(tmp_path_factory.mktemp("demo") / "reference")
    # the history exercises what the memory must follow: sales steps, MQLs, merges
    assert report.feedback > 20 and report.mqls > 10
    assert tables["merges"] and tables["touches"] and tables["score_snapshots"]
    return tables


def test_forgetting_everything_every_day_decides_alike(
    reference: dict[str, list[tuple[object, ...]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The replay as it was: every remembered identity, row and verdict forgotten daily."""
    monkeypatch.setattr(run, "_moved", lambda memory, _ids: memory.others_wrote())
    _, tables = _replay(tmp_path / "forgetful")
    assert tables == reference


def test_a_tiny_memory_decides_alike(
    reference: dict[str, list[tuple[object, ...]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Evicting persons and clearing the scorer's memo every batch changes nothing."""
    made: list[WriterState] = []

    class Recorded(WriterState):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            made.append(self)

    monkeypatch.setattr(run, "WriterState", Recorded)
    monkeypatch.setattr(run, "WRITER_MEMORY_BYTES", 40_000)
    _, tables = _replay(tmp_path / "tiny")
    assert made and made[0].stats["evicted"] > 100 and made[0].stats["memo_clears"] > 10
    assert tables == reference


def test_a_whole_base_rescore_keeps_only_the_memorys_events() -> None:
    held = EventCache()
    remembered = [Event("m-1", "Demo Requested", NOW, {})]
    held.put(1, remembered)
    borrowed = run._Borrowed(held)
    read = [Event("m-2", "Page Viewed", NOW, {"path": "/pricing"})]
    borrowed.put(2, read)  # what a rescore read from the store for this chunk
    assert borrowed.get(1) is remembered and borrowed.get(2) == read
    assert borrowed.knows(1) and borrowed.knows(2)
    borrowed.chunk_done(2)
    assert not borrowed.knows(2) and borrowed.get(2) is None
    assert borrowed.get(1) is remembered and held.knows(1) and not held.knows(2)


def test_the_spool_keeps_full_blocks_in_a_file_and_gives_every_message_back() -> None:
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    spool = DaySpool(start)
    day_ms = 86_400_000
    sent: dict[int, list[tuple[int, int, dict[str, object]]]] = {0: [], 2: []}
    for i in range(3000):  # about 150 kB a day: more than two blocks each
        day = 0 if i % 3 else 2
        at = start + day * day_ms + (i * 7919) % day_ms  # out of order within the day
        message = {"type": "track", "event": "Page Viewed", "properties": {"n": i, "pad": "x" * 90}}
        spool.add(at, i, orjson.dumps(message))  # i: the emission order
        sent[day].append((at, i, message))
    assert all(len(spool.blocks[day]) >= 2 for day in sent)  # spilled to the file
    assert sum(len(buffer) for buffer in spool.open.values()) < 2 * 65_536  # held: open ones
    got = list(spool.days())
    assert [day for day, _ in got] == [0, 2]
    n = 0
    for (day, messages), expected in zip(got, (sent[0], sent[2]), strict=True):
        assert len(messages) == len(expected)
        for message, (at, _, original) in zip(messages, sorted(expected), strict=True):
            assert message.pop("messageId") == f"demo-{n}"
            stamp = datetime.fromisoformat(message.pop("timestamp").replace("Z", "+00:00"))
            assert int(stamp.timestamp() * 1000) == at
            assert message == original
            n += 1
        assert day in sent
