"""Privacy: `optiqoflow erase-tenant | readmit-tenant | erase-record`.

Thin clients of the database's functions (README, "Privacy"), which a DBA in the role
`optiqoflow_admin` can call from psql as well:

- `erase-tenant`: `optiqoflow.erase_tenant(tenant, reason)`, called again, each call its
  own transaction, until its receipt says `"complete": true`;
- `readmit-tenant`: `optiqoflow.readmit_tenant(tenant)`;
- `erase-record`: `optiqoflow.erase_record(tenant, table, id, reason)`.

The database is `DATABASE_URL`, else the embedded PostgreSQL of the data folder; the
role connecting must be a member of `optiqoflow_admin` (the receiver's `service_role` is
refused, 42501).
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

import psycopg

from operations.database import target
from operations.errors import CommandError, UsageError
from operations.ops import _canonical_tenant, _dumps

MAX_CALLS = 1_000_000  # a tenant of 10 billion rows at the default 10,000 per call


def erase_tenant(
    conn: psycopg.Connection[Any], tenant: str, reason: str, chunk_rows: int | None = None
) -> dict[str, Any]:
    """Call optiqoflow.erase_tenant until complete, one transaction per call; return the
    receipt. chunk_rows: optiqoflow.erase_chunk_rows for these calls (None: the default)."""
    if chunk_rows is not None:
        conn.execute(
            "SELECT set_config('optiqoflow.erase_chunk_rows', %s, false)", (str(chunk_rows),)
        )
    receipt: dict[str, Any] = {}
    for _ in range(MAX_CALLS):
        row = _call_retrying(conn, "SELECT optiqoflow.erase_tenant(%s, %s)", (tenant, reason))
        receipt = row[0]
        if receipt.get("complete"):
            return receipt
    raise CommandError(f"tenant {tenant} is not erased after {MAX_CALLS} calls: run it again")


# a call that met a lock held too long (a dashboard query on a view it drops: 55P03),
# a deadlock or a serialization failure rolled back alone: it is tried again
RETRYABLE = (
    psycopg.errors.LockNotAvailable,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
)
RETRIES = 10


def _call_retrying(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...]) -> Any:
    """One call in its own transaction, tried again (up to RETRIES times, a second
    apart) when it failed on a lock; its one row."""
    for attempt in range(RETRIES + 1):
        try:
            with conn.transaction():
                row = conn.execute(query, params).fetchone()
            assert row is not None
            return row
        except RETRYABLE as e:
            if attempt == RETRIES:
                raise CommandError(
                    f"gave up after {RETRIES + 1} tries ({e.sqlstate}: {e.diag.message_primary}); "
                    "nothing of the last call was kept: run the command again"
                ) from None
            time.sleep(1)
    raise AssertionError("unreachable")


def _summary(receipt: dict[str, Any]) -> str:
    removed = {k: v for k, v in receipt.get("removed", {}).items() if v}
    scrubbed = {k: v for k, v in receipt.get("scrubbed", {}).items() if v}
    lines = [
        f"optiqoflow erase-tenant: tenant {receipt['tenant_id']} erased at {receipt['erased_at']} "
        f"({receipt['calls']} calls); its deliveries are refused until readmitted",
        "  removed: " + (", ".join(f"{k} {v}" for k, v in sorted(removed.items())) or "nothing"),
        "  log rows kept without tenant or payload: "
        + (", ".join(f"{k} {v}" for k, v in sorted(scrubbed.items())) or "none"),
        f"  receipt: SELECT receipt FROM optiqoflow.tenant_erasures WHERE tenant_id = '{receipt['tenant_id']}';",
    ]
    return "\n".join(lines)


def _run_erase_tenant(args: argparse.Namespace) -> int:
    tenant = _canonical_tenant(args.tenant)
    if not args.yes:
        raise UsageError(
            f"erasing tenant {tenant} removes all its data for good: add --yes to confirm"
        )
    if args.chunk_rows is not None and args.chunk_rows < 1:
        raise UsageError("--chunk-rows must be at least 1")
    with target("erase-tenant") as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        receipt = erase_tenant(conn, tenant, args.reason, args.chunk_rows)
    print(_dumps(receipt) if args.json else _summary(receipt))
    return 0


def _run_readmit_tenant(args: argparse.Namespace) -> int:
    tenant = _canonical_tenant(args.tenant)
    with target("readmit-tenant") as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT optiqoflow.readmit_tenant(%s)", (tenant,)).fetchone()
    assert row is not None
    answer: dict[str, Any] = row[0]
    if args.json:
        print(_dumps(answer))
    else:
        print(
            f"optiqoflow readmit-tenant: tenant {tenant} readmitted at {answer['readmitted_at']} "
            f"(erased at {answer['erased_at']}; the receipt stays in optiqoflow.tenant_erasures)"
        )
    return 0


def _run_erase_record(args: argparse.Namespace) -> int:
    tenant = _canonical_tenant(args.tenant)
    try:
        record = str(uuid.UUID(args.id.strip().strip("{}")))
    except ValueError:
        raise UsageError(f"not a record UUID: {args.id!r}") from None
    if not args.yes:
        raise UsageError(f"erasing record {record} cannot be undone: add --yes to confirm")
    with target("erase-record") as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT optiqoflow.erase_record(%s, %s, %s, %s)",
            (tenant, args.table, record, args.reason),
        ).fetchone()
    assert row is not None
    receipt: dict[str, Any] = row[0]
    if args.json:
        print(_dumps(receipt))
    else:
        removed = ", ".join(f"{k} {v}" for k, v in sorted(receipt["removed"].items()) if v)
        print(
            f"optiqoflow erase-record: {receipt['table']} {record} of tenant {tenant} erased "
            f"(removed: {removed or 'nothing'}; tombstone at {receipt['tombstone']['version']})"
        )
    return 0


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "erase-tenant",
        help="erase every trace of a tenant and close it (needs optiqoflow_admin)",
        description=(
            "Calls optiqoflow.erase_tenant(TENANT, REASON) until it is complete, each call "
            "one bounded transaction: the tenant is closed (its deliveries are refused, "
            "OF028) and its rows, tombstones, runs, logs' payloads and ids, keys, refusals, "
            "chart caches, charts, views and role grants are removed. Prints the receipt, "
            "which stays in optiqoflow.tenant_erasures. Run it again after an interruption."
        ),
    )
    p.add_argument("tenant", metavar="TENANT", help="the tenant's UUID")
    p.add_argument("--reason", required=True, help="why (kept in the receipt)")
    p.add_argument("--yes", action="store_true", help="confirm: the data cannot be brought back")
    p.add_argument("--chunk-rows", type=int, help="rows removed per transaction (default: 10,000)")
    p.add_argument("--json", action="store_true", help="print the receipt as JSON")
    p.set_defaults(func=_run_erase_tenant)

    p = sub.add_parser(
        "readmit-tenant",
        help="reopen an erased tenant (needs optiqoflow_admin)",
        description=(
            "Calls optiqoflow.readmit_tenant(TENANT): its deliveries are applied again, as a "
            "new tenant's. The erasure's receipt stays."
        ),
    )
    p.add_argument("tenant", metavar="TENANT", help="the tenant's UUID")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.set_defaults(func=_run_readmit_tenant)

    p = sub.add_parser(
        "erase-record",
        help="erase one record and its traces, keeping a tombstone (needs optiqoflow_admin)",
        description=(
            "Calls optiqoflow.erase_record(TENANT, TABLE, ID, REASON): the row, refused "
            "deliveries holding its id and the tenant's chart cache entries of its table go; a "
            "tombstone stays so that an old retry cannot bring it back. Prints the receipt, kept "
            "in optiqoflow.record_erasures."
        ),
    )
    p.add_argument("tenant", metavar="TENANT", help="the tenant's UUID")
    p.add_argument("table", metavar="TABLE", help="a source or target table name")
    p.add_argument("id", metavar="ID", help="the record's id (a UUID)")
    p.add_argument("--reason", required=True, help="why (kept in the receipt)")
    p.add_argument("--yes", action="store_true", help="confirm: the record cannot be brought back")
    p.add_argument("--json", action="store_true", help="print the receipt as JSON")
    p.set_defaults(func=_run_erase_record)
