"""Accounts: read by id, found or made by e-mail domain, claimed by a ``group`` call."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from mqlengine.domain.person import Account
from mqlengine.store.dialect import insert_ignoring_conflicts
from mqlengine.store.repo import chunks
from mqlengine.store.tables import accounts

_ACCOUNT = select(accounts.c.id, accounts.c.domain, accounts.c.traits)


def accounts_by_id(connection: Connection, account_ids: Iterable[int | None]) -> dict[int, Account]:
    found: dict[int, Account] = {}
    ids = sorted({a for a in account_ids if a is not None})
    for part in chunks(ids):
        for row in connection.execute(_ACCOUNT.where(accounts.c.id.in_(part))).mappings():
            found[row["id"]] = Account.from_row(row)
    return found


def domain_account(
    connection: Connection, domain: str, person_traits: Mapping[str, Any], now: datetime
) -> int:
    """The account of an e-mail domain, made (named after the person's ``company`` trait)
    when there is none; a concurrent writer making the same one is no conflict."""
    row = connection.execute(select(accounts.c.id).where(accounts.c.domain == domain)).first()
    if row is not None:
        return int(row.id)
    company = person_traits.get("company")
    name = company.get("name") if isinstance(company, Mapping) else company
    account_traits: dict[str, Any] = {}
    if isinstance(company, Mapping):
        account_traits = {k: company[k] for k in ("name", "industry", "employees") if k in company}
    insert_ignoring_conflicts(
        connection,
        accounts,
        [
            {
                "domain": domain,
                "name": name if isinstance(name, str) else domain,
                "traits": account_traits,
                "created_at": now,
                "updated_at": now,
            }
        ],
        ["domain"],
    )
    return int(
        connection.execute(select(accounts.c.id).where(accounts.c.domain == domain)).scalar_one()
    )


def website_domain(traits: Mapping[str, Any]) -> str | None:
    """The domain of a ``website`` (or ``domain``) trait: no scheme, path or ``www.``."""
    website = traits.get("website") or traits.get("domain")
    if isinstance(website, str) and website.strip():
        domain = website.strip().lower().split("://")[-1].split("/")[0].removeprefix("www.")
        return domain if len(domain) <= 253 else None  # no DNS name is longer
    return None


def _account_name(traits: Mapping[str, Any]) -> str | None:
    """The ``name`` trait as the column keeps it (the parser refuses other shapes)."""
    name = traits.get("name")
    return str(name) if isinstance(name, str | int | float) and name != "" else None


def group_account(
    connection: Connection,
    group_id: str,
    traits: Mapping[str, Any],
    now: datetime,
    *,
    merge_traits: Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]],
) -> int:
    """The account a ``group`` call names: found by group id, else by the website's
    domain (and then claimed for the group), else made. ``merge_traits(old, new)``
    combines what is known of it with what the call says."""
    row = connection.execute(
        select(accounts.c.id, accounts.c.traits).where(accounts.c.group_id == group_id)
    ).first()
    domain = website_domain(traits)
    if row is None and domain:
        row = connection.execute(
            select(accounts.c.id, accounts.c.traits).where(accounts.c.domain == domain)
        ).first()
    if row is not None:
        connection.execute(
            update(accounts)
            .where(accounts.c.id == row.id)
            .values(
                group_id=group_id,
                traits=merge_traits(row.traits or {}, traits),
                name=_account_name(traits) or accounts.c.name,
                updated_at=now,
            )
        )
        return int(row.id)
    result = connection.execute(
        accounts.insert().values(
            group_id=group_id,
            domain=domain,
            name=_account_name(traits),
            traits=traits,
            created_at=now,
            updated_at=now,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]
