"""Record builders shared by the isolation, privilege and evolution tests."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tests.conftest import apply

_versions = itertools.count(1)
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def version() -> str:
    """A version (updated_at) newer than every one handed out before in this process."""
    return (_EPOCH + timedelta(seconds=next(_versions))).isoformat()


def rec(**fields: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "updated_at": version(), **fields}


def insert(
    c: psycopg.Connection[Any],
    tenant: str,
    record: dict[str, Any],
    table: str = "adhoc_work_orders",
) -> dict[str, Any]:
    return apply(c, {"type": "INSERT", "table": table, "tenant_id": tenant, "record": record})


def push(
    c: psycopg.Connection[Any], tenant: str, table: str = "adhoc_work_orders", **fields: Any
) -> dict[str, Any]:
    """INSERT one new record with these fields (or `record=`); asserts it was applied."""
    answer = insert(c, tenant, fields.pop("record", None) or rec(**fields), table)
    assert answer["status"] == "applied", answer
    return answer
