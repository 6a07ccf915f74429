"""Notifications for people, through the outbox. E-mail to a real SMTP server (aiosmtpd) on
loopback: a new MQL's notification arrives with the right envelope, headers and body; a
refusing or stopped server leaves the row pending for a later retry; plain localhost needs no
STARTTLS. Slack: an incoming-webhook message (Block Kit) posted to a real HTTP receiver."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import orjson
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select, update

from mqlengine.domain.rules import Definition
from mqlengine.ingest.pipeline import Pipeline
from mqlengine.notify.relay import deliver_due
from mqlengine.notify.senders import SendOptions
from mqlengine.services import outbox, reps
from mqlengine.services.qualify import HANDOFF
from mqlengine.store.db import Database
from mqlengine.store.tables_handoff import assignments, destinations
from mqlengine.store.tables_handoff import outbox as outbox_table
from support.clock import Clock
from support.secrets import TEST_BOX

# Monday 2026-11-16, 10:00 in New York (15:00 UTC): inside business hours
MONDAY = datetime(2026, 11, 16, 15, 0, tzinfo=UTC)
SENDER = "mql-alerts@example.com"
OWNER = "ana@example.com"
DESK = "sales-desk@example.com"


# --- a real SMTP server ---------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool


@dataclass
class Mailbox:
    """An aiosmtpd handler: stores every accepted message; ``refuse`` (a full SMTP reply,
    e.g. ``"550 …"``) makes it reject the DATA command instead."""

    refuse: str | None = None
    refuse_rcpt: str | None = None  # an address whose RCPT TO is refused (550)
    received: list[Received] = field(default_factory=list)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address == self.refuse_rcpt:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            if self.refuse is not None:
                self.refused += 1
                return self.refuse
            assert isinstance(envelope.content, bytes)
            message = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(message, EmailMessage)
            self.received.append(
                Received(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=list(envelope.rcpt_tos),
                    message=message,
                    tls=session.ssl is not None,
                )
            )
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpServer:
    controller: Controller
    mailbox: Mailbox
    running: bool = True

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.controller.stop()


@contextmanager
def smtp_server(mailbox: Mailbox | None = None) -> Iterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1, in its own thread, plain SMTP (no TLS context: no STARTTLS)."""
    mailbox = mailbox or Mailbox()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=free_port(), server_hostname="mx.test"
    )
    controller.start()
    server = SmtpServer(controller, mailbox)
    try:
        yield server
    finally:
        server.stop()


# --- the project's real path: destination, a new MQL, the relay ------------------------------


def add_email_destination(db: Database, port: int) -> None:
    """What ``mql outbox add-destination mail --kind email --url smtp://… --to owner --to …``
    does: the same library call, on plain SMTP with no credentials and no STARTTLS."""
    with db.begin() as connection:
        reps.upsert_team(
            connection, "enterprise", now=MONDAY, manager_name="M", manager_email="m@example.com"
        )
        reps.upsert_rep(
            connection,
            "ana",
            now=MONDAY,
            team="enterprise",
            name="Ana Owner",
            email=OWNER,
            timezone="America/New_York",
            capacity_per_day=5,
        )
        outbox.add_destination(
            connection,
            box=TEST_BOX,
            name="mail",
            kind="email",
            url=f"smtp://127.0.0.1:{port}?from={SENDER}",
            now=MONDAY,
            topics=["mql.assigned"],
            email_to=["owner", DESK],
        )


def new_mql(db: Database, definition: Definition) -> int:
    """A VP who requests a demo: qualifies, is routed to Ana, and an e-mail row is written."""
    traits = {
        "email": "grace.hopper@northwind.io",
        "first_name": "Grace",
        "last_name": "Hopper",
        "title": "VP Marketing",
        "seniority": "vp",
        "department": "marketing",
        "company": {"name": "Northwind", "employees": 2000, "industry": "software"},
        "country": "US",
    }
    messages: list[dict[str, Any]] = [
        {
            "type": "identify",
            "messageId": "gh-id",
            "userId": "gh",
            "traits": traits,
            "timestamp": (MONDAY - timedelta(minutes=5)).isoformat(),
        },
        {
            "type": "track",
            "messageId": "gh-demo",
            "userId": "gh",
            "event": "Demo Requested",
            "timestamp": MONDAY.isoformat(),
        },
    ]
    with db.begin() as connection:
        result = Pipeline(definition, handoff=HANDOFF).ingest(connection, messages, now=MONDAY)
    assert not result.rejected
    (person_id,) = result.persons
    return person_id


def email_row(db: Database) -> dict[str, Any]:
    with db.read() as connection:
        return dict(connection.execute(select(outbox_table)).mappings().one())


# --- tests ----------------------------------------------------------------------------------


def test_new_mql_email_arrives_with_who_why_and_deadline(
    db: Database, definition: Definition
) -> None:
    with smtp_server() as smtp:
        add_email_destination(db, smtp.port)
        person_id = new_mql(db, definition)
        row = email_row(db)
        assert (row["topic"], row["status"], row["attempts"]) == ("mql.assigned", "pending", 0)
        stats = deliver_due(db, options=SendOptions(box=TEST_BOX), worker="t", clock=Clock(MONDAY))
    assert (stats.claimed, stats.delivered, stats.retried) == (1, 1, 0)
    with db.read() as connection:
        assignment = connection.execute(select(assignments)).mappings().one()
    due = assignment["sla_due_at"]
    assert due == MONDAY + timedelta(minutes=15)  # the example's hot demo-request SLA

    (mail,) = smtp.mailbox.received
    assert mail.mail_from == SENDER
    assert sorted(mail.rcpt_tos) == sorted([OWNER, DESK])  # "owner" resolved to Ana
    message = mail.message
    assert message["From"] == SENDER
    assert sorted(a.strip() for a in str(message["To"]).split(",")) == sorted([OWNER, DESK])
    assert message["Subject"] == "New MQL: Grace Hopper (VP Marketing, Northwind, US)"
    assert message["Message-ID"] == f"<{row['message_id']}@mqlengine>"
    assert message["Date"].datetime.tzinfo is not None  # RFC 5322 §3.6: Date is required
    body = message.get_content()
    assert "Grace Hopper" in body  # who
    assert "Why: " in body and "total" in body  # why they qualified: MQL type and score
    assert "Top signals: " in body and "+" in body  # … and the rules that contributed
    assert f"First touch due: {due.isoformat()}" in body  # the SLA deadline
    assert "(hot_demo_request)" in body
    assert f"/persons/{person_id}" in body
    assert row["message_id"] in body
    assert not mail.tls  # plain SMTP on localhost: no STARTTLS asked for or needed
    assert email_row(db)["status"] == "delivered"


def test_refusing_server_is_retried_later_then_delivered(
    db: Database, definition: Definition
) -> None:
    clock = Clock(MONDAY)
    mailbox = Mailbox(refuse="550 5.7.1 Message rejected by policy")
    with smtp_server(mailbox) as smtp:
        add_email_destination(db, smtp.port)
        new_mql(db, definition)
        stats = deliver_due(db, options=SendOptions(box=TEST_BOX), worker="t", clock=clock)
        assert (stats.delivered, stats.retried, stats.dead) == (0, 1, 0)
        row = email_row(db)
        assert row["status"] == "pending" and row["attempts"] == 1
        assert row["delivered_at"] is None
        assert row["last_error"].startswith("SMTP delivery failed")
        assert "550" in row["last_error"] and "rejected by policy" in row["last_error"]
        assert row["next_attempt_at"] > clock.now  # backed off: retried later, not now
        assert (
            deliver_due(db, options=SendOptions(box=TEST_BOX), worker="t", clock=clock).claimed == 0
        )
        assert mailbox.refused == 1 and mailbox.received == []

        mailbox.refuse = None  # the server recovers
        clock.advance(minutes=1)
        assert (
            deliver_due(db, options=SendOptions(box=TEST_BOX), worker="t", clock=clock).delivered
            == 1
        )
    row = email_row(db)
    assert (row["status"], row["attempts"]) == ("delivered", 2)
    (mail,) = mailbox.received
    assert mail.message["Message-ID"] == f"<{row['message_id']}@mqlengine>"  # same id


def test_stopped_server_is_retried_later(db: Database, definition: Definition) -> None:
    clock = Clock(MONDAY)
    with smtp_server() as smtp:
        add_email_destination(db, smtp.port)
        new_mql(db, definition)
        smtp.stop()  # nobody listens on the port any more
        stats = deliver_due(db, options=SendOptions(box=TEST_BOX), worker="t", clock=clock)
    assert (stats.delivered, stats.retried) == (0, 1)
    row = email_row(db)
    assert row["status"] == "pending" and row["attempts"] == 1
    assert row["delivered_at"] is None
    assert row["last_error"].startswith("SMTP delivery failed")
    assert row["next_attempt_at"] > clock.now


def test_a_refused_recipient_means_not_delivered_yet(db: Database, definition: Definition) -> None:
    """One recipient refused, the other accepted: the row is retried (at least once for
    everyone, same Message-ID), never marked delivered while someone is missing it."""
    clock = Clock(MONDAY)
    mailbox = Mailbox(refuse_rcpt="sales-desk@example.com")
    with smtp_server(mailbox) as smtp:
        add_email_destination(db, smtp.port)
        new_mql(db, definition)
        stats = deliver_due(db, options=SendOptions(box=TEST_BOX), worker="t", clock=clock)
        assert (stats.delivered, stats.retried) == (0, 1)
        row = email_row(db)
        assert row["status"] == "pending" and "sales-desk@example.com" in row["last_error"]
        assert len(mailbox.received) == 1  # the owner got it already

        mailbox.refuse_rcpt = None
        clock.advance(minutes=1)
        assert (
            deliver_due(db, options=SendOptions(box=TEST_BOX), worker="t", clock=clock).delivered
            == 1
        )
    first, second = mailbox.received
    assert first.message["Message-ID"] == second.message["Message-ID"]
    assert "sales-desk@example.com" in second.rcpt_tos


def test_new_mql_slack_message_says_who_why_and_deadline(
    db: Database, definition: Definition
) -> None:
    """A Slack incoming-webhook destination gets a Block Kit message: who, why they
    qualified, the top signals, the owner, the SLA deadline and a link to the person page."""
    from webhook_receiver import receiver

    with receiver() as hook:
        add_email_destination(db, 9)  # the team and rep; the e-mail row itself is not sent here
        with db.begin() as connection:
            outbox.add_destination(
                connection,
                box=TEST_BOX,
                name="slack",
                kind="slack",
                url=hook.url,
                now=MONDAY,
                topics=["mql.assigned"],
            )
        person_id = new_mql(db, definition)
        slack_id = destination_id(db, "slack")
        with db.begin() as connection:  # keep only the Slack row due
            connection.execute(
                update(outbox_table)
                .where(outbox_table.c.destination_id != slack_id)
                .values(status="dead")
            )
        stats = deliver_due(
            db,
            worker="t",
            clock=Clock(MONDAY),
            options=SendOptions(box=TEST_BOX, base_url="https://mql.example"),
        )
        assert stats.delivered == 1
        (delivery,) = hook.deliveries
    message = orjson.loads(delivery.body)
    assert message["text"].startswith("New MQL: Grace Hopper")
    section = message["blocks"][0]["text"]["text"]
    assert "hand_raiser" in section and "demo_request" in section
    assert "Ana Owner" in section and "First touch due" in section
    assert f"<https://mql.example/persons/{person_id}|Open person page>" in section
    row = next(r for r in all_rows(db) if r["destination_id"] == slack_id)
    assert message["blocks"][1]["elements"][0]["text"] == f"id `{row['message_id']}`"


def destination_id(db: Database, name: str) -> int:
    with db.read() as connection:
        return int(
            connection.execute(
                select(destinations.c.id).where(destinations.c.name == name)
            ).scalar_one()
        )


def all_rows(db: Database) -> list[dict[str, Any]]:
    with db.read() as connection:
        return [dict(r) for r in connection.execute(select(outbox_table)).mappings()]
