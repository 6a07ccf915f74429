"""Values read once per transaction and reused until it ends.

Some inputs of the handoff change rarely but were read for every stage change: the reps
and teams, the notification destinations. Within one transaction they are read once; the
next transaction (or savepoint) reads them again, so a change another process committed
in between is always seen. Changes made on the same transaction go through the services
that own those tables, which call :func:`forget`.

The memo lives in the pooled connection's ``info`` and names the transaction it belongs
to (weakly), so it is confined to the thread using the connection and never outlives the
transaction in effect.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection

T = TypeVar("T")
_INFO_KEY = "mqlengine.txcache"


class _Scope:
    __slots__ = ("nested", "root", "values")

    def __init__(self, root: Any, nested: Any) -> None:
        self.root = weakref.ref(root)
        self.nested = weakref.ref(nested) if nested is not None else None
        self.values: dict[str, Any] = {}

    def belongs_to(self, root: Any, nested: Any) -> bool:
        if self.root() is not root:
            return False
        if self.nested is None:
            return nested is None
        current = self.nested()  # None once that savepoint ended: then nothing matches
        return current is not None and current is nested


def cached(connection: Connection, name: str, load: Callable[[], T]) -> T:
    """``load()`` once per transaction (and savepoint) of ``connection``; outside a
    transaction, every time."""
    root = connection.get_transaction()
    if root is None:
        return load()
    nested = connection.get_nested_transaction()
    info = connection.info
    scope = info.get(_INFO_KEY)
    if not isinstance(scope, _Scope) or not scope.belongs_to(root, nested):
        scope = info[_INFO_KEY] = _Scope(root, nested)
    if name in scope.values:
        value: T = scope.values[name]
        return value
    value = scope.values[name] = load()
    return value


def forget(connection: Connection, name: str) -> None:
    """Drop the memo ``name`` of the current transaction: its tables were just written."""
    scope = connection.info.get(_INFO_KEY)
    if isinstance(scope, _Scope):
        scope.values.pop(name, None)
