"""Webhook delivery through the outbox to a real HTTP receiver on loopback: signatures,
receiver failures, slow receivers, retries with backoff, dead letters and replay, and a
worker process killed mid-delivery (nothing lost; duplicates carry the same id)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import select
from webhook_receiver import receiver

from mqlengine.notify import signing
from mqlengine.notify.relay import deliver_due
from mqlengine.notify.senders import SendOptions
from mqlengine.services import outbox
from mqlengine.store.db import Database
from mqlengine.store.tables_handoff import outbox as outbox_table
from support.clock import Clock
from support.paths import EXAMPLE, ROOT
from support.secrets import TEST_BOX

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
START = datetime(2026, 11, 16, 15, 0, tzinfo=UTC)


def setup(db: Database, url: str, n: int = 1, *, secret: str | None = SECRET) -> list[str]:
    with db.begin() as connection:
        outbox.add_destination(
            connection, box=TEST_BOX, name="crm", kind="webhook", url=url, now=START, secret=secret
        )
        ids: list[str] = []
        for i in range(n):
            ids += outbox.enqueue(
                connection,
                "mql.assigned",
                {"person": {"id": i + 1}, "n": i},
                now=START,
                person_id=i + 1,
            )
    return ids


def statuses(db: Database) -> dict[str, tuple[str, int]]:
    with db.read() as connection:
        rows = connection.execute(
            select(outbox_table.c.message_id, outbox_table.c.status, outbox_table.c.attempts)
        )
        return {r.message_id: (r.status, r.attempts) for r in rows}


def test_delivers_signed_messages_with_stable_ids(db: Database) -> None:
    with receiver() as hook:
        ids = setup(db, hook.url, 3)
        stats = deliver_due(db, options=SendOptions(box=TEST_BOX), worker="t", clock=Clock(START))
    assert stats.delivered == 3
    assert sorted(hook.ids()) == sorted(ids)
    for delivery in hook.deliveries:
        message_id = signing.verify(SECRET, delivery.headers, delivery.body, now=time.time())
        body = orjson.loads(delivery.body)
        assert body["id"] == message_id and body["type"] == "mql.assigned"
        assert delivery.headers["webhook-signature"].startswith("v1,")
        with pytest.raises(signing.SignatureError):
            signing.verify(
                signing.generate_secret(), delivery.headers, delivery.body, now=time.time()
            )
        with pytest.raises(signing.SignatureError):
            signing.verify(SECRET, delivery.headers, delivery.body + b" ", now=time.time())
        with pytest.raises(signing.SignatureError):
            signing.verify(SECRET, delivery.headers, delivery.body, now=time.time() + 3600)
    assert {s for s, _ in statuses(db).values()} == {"delivered"}


def test_receiver_failures_are_retried_with_backoff(db: Database) -> None:
    clock = Clock(START)
    with receiver(lambda n: (500, 0.0) if n <= 2 else (200, 0.0)) as hook:
        (message_id,) = setup(db, hook.url)
        first = deliver_due(db, options=SendOptions(box=TEST_BOX), worker="t", clock=clock)
        assert first.retried == 1
        with db.read() as connection:
            row = connection.execute(select(outbox_table)).mappings().one()
        assert row["status"] == "pending" and row["attempts"] == 1 and row["last_status"] == 500
        delay = row["next_attempt_at"] - clock.now
        assert timedelta(seconds=1) <= delay <= timedelta(seconds=2)  # base 2 s, jitter U(0.5, 1)
        assert (
            deliver_due(db, options=SendOptions(box=TEST_BOX), worker="t", clock=clock).claimed == 0
        )  # not due yet
        clock.advance(seconds=2)
        assert (
            deliver_due(db, options=SendOptions(box=TEST_BOX), worker="t", clock=clock).retried == 1
        )
        with db.read() as connection:
            row = connection.execute(select(outbox_table)).mappings().one()
        assert timedelta(seconds=2) <= row["next_attempt_at"] - clock.now <= timedelta(seconds=4)
        clock.advance(seconds=4)
        assert (
            deliver_due(db, options=SendOptions(box=TEST_BOX), worker="t", clock=clock).delivered
            == 1
        )
    assert hook.ids() == [message_id] * 3  # every attempt: the same id
    assert statuses(db)[message_id] == ("delivered", 3)


def test_slow_receiver_times_out_and_is_retried(db: Database) -> None:
    clock = Clock(START)
    options = SendOptions(box=TEST_BOX, timeout=0.3)
    with receiver(lambda n: (200, 1.0) if n == 1 else (200, 0.0)) as hook:
        (message_id,) = setup(db, hook.url)
        stats = deliver_due(db, worker="t", clock=clock, options=options)
        assert stats.retried == 1
        with db.read() as connection:
            error = connection.execute(select(outbox_table.c.last_error)).scalar_one()
        assert "timed out" in error
        clock.advance(minutes=1)
        assert deliver_due(db, worker="t", clock=clock, options=options).delivered == 1
    assert hook.ids() == [message_id, message_id]


def test_dead_letter_after_max_attempts_then_replay(db: Database) -> None:
    clock = Clock(START)
    healthy = False

    def behaviour(_n: int) -> tuple[int, float]:
        return (200 if healthy else 503), 0.0

    with receiver(behaviour) as hook:
        (message_id,) = setup(db, hook.url)
        for _ in range(3):
            deliver_due(
                db, options=SendOptions(box=TEST_BOX), worker="t", clock=clock, max_attempts=3
            )
            clock.advance(hours=1)
        assert statuses(db)[message_id] == ("dead", 3)
        assert (
            deliver_due(
                db, options=SendOptions(box=TEST_BOX), worker="t", clock=clock, max_attempts=3
            ).claimed
            == 0
        )
        with db.read() as connection:
            dead = outbox.list_outbox(connection, status="dead")
        assert [r["message_id"] for r in dead] == [message_id]
        healthy = True
        with db.begin() as connection:
            assert outbox.replay(connection, now=clock.now, dead=True) == 1
        assert (
            deliver_due(
                db, options=SendOptions(box=TEST_BOX), worker="t", clock=clock, max_attempts=3
            ).delivered
            == 1
        )
    assert hook.ids() == [message_id] * 4
    assert statuses(db)[message_id][0] == "delivered"


def test_unreachable_receiver_is_an_error_not_a_crash(db: Database) -> None:
    from support.localserver import free_port

    setup(db, f"http://127.0.0.1:{free_port()}/nobody")
    stats = deliver_due(db, options=SendOptions(box=TEST_BOX), worker="t", clock=Clock(START))
    assert stats.retried == 1
    with db.read() as connection:
        row = connection.execute(select(outbox_table)).mappings().one()
    assert row["last_error"].startswith("could not deliver")


def _worker(database_url: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mqlengine",
            "--database",
            database_url,
            "--definition",
            str(EXAMPLE),
            "worker",
            "--poll",
            "0.05",
            "--sla-every",
            "3600",
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


@pytest.mark.slow
def test_worker_killed_mid_delivery_loses_nothing(db: Database, migrated_database_url: str) -> None:
    stall = True

    def behaviour(_n: int) -> tuple[int, float]:
        return 200, (5.0 if stall else 0.0)

    with receiver(behaviour) as hook:
        ids = setup(db, hook.url, 5)
        first = _worker(migrated_database_url, "--concurrency", "1", "--lease", "2")
        try:
            assert hook.arrived.wait(30), "the worker never delivered"
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(10)
        assert first.returncode == -signal.SIGKILL
        assert len(hook.deliveries) == 1
        assert {s for s, _ in statuses(db).values()} == {"pending"}  # nothing recorded as sent
        stall = False
        time.sleep(2.2)  # the dead worker's lease expires
        second = _worker(migrated_database_url, "--once", "--lease", "30")
        assert second.wait(60) == 0
    assert {s for s, _ in statuses(db).values()} == {"delivered"}
    received = hook.ids()
    assert sorted(set(received)) == sorted(ids)  # nothing lost
    assert len(received) == 6 and received.count(received[0]) == 2  # the duplicate keeps its id
