"""The batch engines' reference: scoring a store's persons in one batch gives the cards the
online path gives, and the inputs read from the store and from Parquet exports agree."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mqlengine.batch.engine import CARDS_SCHEMA, BatchInput, PythonEngine
from mqlengine.batch.source import from_files, from_store
from mqlengine.demo.run import run_demo
from mqlengine.services.leads import person_detail
from mqlengine.settings import Settings
from mqlengine.wiring import Wiring
from support.clock import NOW


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Wiring:
    path = tmp_path_factory.mktemp("batch") / "mql.db"
    settings = Settings(database_url=f"sqlite:///{path}", definition_path=path.parent / "none.yaml")
    wiring = Wiring(settings, clock=lambda: NOW)
    run_demo(wiring, now=NOW, persons_count=120, days=40, seed=3)
    return wiring


def test_reference_engine_gives_the_online_cards(demo_store: Wiring) -> None:
    definition = demo_store.definition().definition
    as_of = NOW + timedelta(days=2)
    cards = PythonEngine().score(definition, from_store(demo_store.db), as_of)
    assert cards.schema == CARDS_SCHEMA
    assert cards.num_rows >= 100
    ids = cards.column("person_id").to_pylist()
    assert ids == sorted(ids)
    totals = dict(zip(ids, cards.column("total").to_pylist(), strict=True))
    qualifies = dict(zip(ids, cards.column("qualifies").to_pylist(), strict=True))
    for person_id in ids[:: max(1, len(ids) // 25)]:
        with demo_store.db.read() as connection:
            detail = person_detail(connection, definition, person_id, as_of=as_of)
        assert totals[person_id] == pytest.approx(detail.card.total, abs=1e-9)
        assert qualifies[person_id] == detail.card.qualifies


def test_events_until_a_moment_and_parquet_exports(demo_store: Wiring, tmp_path: Path) -> None:
    everything = from_store(demo_store.db)
    earlier = from_store(demo_store.db, until=NOW - timedelta(days=20))
    assert 0 < earlier.events.num_rows < everything.events.num_rows
    pq.write_table(everything.events, tmp_path / "events.parquet")
    pq.write_table(everything.persons, tmp_path / "persons.parquet")
    loaded = from_files(tmp_path / "events.parquet", tmp_path / "persons.parquet")
    definition = demo_store.definition().definition
    engine = PythonEngine()
    assert engine.score(definition, loaded, NOW).equals(engine.score(definition, everything, NOW))


def test_a_batch_input_names_what_is_missing(demo_store: Wiring) -> None:
    data = from_store(demo_store.db)
    with pytest.raises(ValueError, match="events: missing column"):
        BatchInput(data.persons, data.events.drop_columns(["properties"]))
