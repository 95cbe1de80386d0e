"""Operating a running sync: `optiqoflow prune | replay | status | reconcile`.

Each command is a thin client of something that lives in the database, so a DBA can do
the same from psql:

- `prune`: `optiqoflow.prune_logs(retention)`, called again while it reports "more";
- `replay`: `optiqoflow.replay_webhook(log_id)` for the chosen waiting deliveries of
  `optiqoflow.refused_deliveries`, each in its own transaction (rolled back with
  `--dry-run`);
- `status`: the view `optiqoflow.sync_health`;
- `reconcile`: `optiqoflow.table_fingerprint(tenant, table)` against the same fingerprint
  computed on the source database (the query `optiqoflow.fingerprint_query` defines).

The database is `DATABASE_URL`, else the embedded PostgreSQL of the data folder
(operations.database.target).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from operations.database import check_dsn, target
from operations.errors import UsageError

RESOLVED = ("applied", "duplicate", "stale")
NOTHING_TO_REPLAY = "nothing to replay"
HELD = "held back"  # a bulk replay that would remove rows, without --allow-removals


def _canonical_tenant(text: str) -> str:
    try:
        return str(uuid.UUID(text.strip().strip("{}")))
    except ValueError:
        raise UsageError(f"not a tenant UUID: {text!r}") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _dumps(value: Any, indent: int | None = 2) -> str:
    return json.dumps(_jsonable(value), indent=indent)


# --- prune -------------------------------------------------------------------------------


def prune(
    conn: psycopg.Connection[Any],
    retention: str = "7 days",
    max_calls: int = 1000,
    refused_retention: str | None = None,
) -> dict[str, Any]:
    """Call optiqoflow.prune_logs until it has nothing more to do (one transaction per
    call); return the summed report. refused_retention: how long unresolved refusals
    are kept (None: the database's default, 30 days or the log retention if longer)."""
    total: dict[str, Any] = {}
    for _ in range(max_calls):
        with conn.transaction():
            row = conn.execute(
                "SELECT optiqoflow.prune_logs(%s::interval, %s::interval)",
                (retention, refused_retention),
            ).fetchone()
        assert row is not None
        step: dict[str, Any] = row[0]
        for key, value in step.items():
            if isinstance(value, list):
                total[key] = total.get(key, []) + value
            elif isinstance(value, int) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
            else:
                total[key] = value
        if not step.get("more"):
            break
    return total


def _run_prune(args: argparse.Namespace) -> int:
    with target("prune") as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        report = prune(conn, args.retention, refused_retention=args.refused_retention)
    if args.json:
        print(_dumps(report))
        return 0
    print(f"optiqoflow prune: retention {report['retention']} (cut-off {report['cutoff']})")
    print(f"  log partitions dropped: {', '.join(report['partitions_dropped']) or '-'}")
    print(f"  log partitions created: {', '.join(report['partitions_created']) or '-'}")
    if report["partitions_locked"]:
        print(
            f"  skipped, lock not granted (next run retries): {', '.join(report['partitions_locked'])}"
        )
    print(
        f"  rows deleted: {report['delivery_keys_deleted']} de-duplication keys, "
        f"{report['push_log_deleted']} push log, {report['refused_deleted']} resolved refusals, "
        f"{report['refused_expired']} refusals unresolved past {report['refused_retention']}, "
        f"{report['default_rows_deleted']} from the default log partition "
        f"({report['default_rows_moved']} moved to their day's partition)"
    )
    return 0


# --- replay ------------------------------------------------------------------------------


@dataclass
class Delivery:
    log_id: int
    outcome: str | None = None
    received_at: dt.datetime | None = None
    tenant_id: str | None = None
    table: str | None = None
    error: str | None = None
    resolved_at: dt.datetime | None = None
    resolved_by: int | None = None

    @property
    def settled(self) -> str | None:
        """Why there is nothing to replay (None: there may be): it was applied, a
        duplicate or stale, or a refusal resolved since."""
        if self.resolved_at is not None:
            return f"resolved by log {self.resolved_by}" if self.resolved_by else "dismissed"
        return self.outcome if self.outcome in RESOLVED else None


def waiting_deliveries(
    conn: psycopg.Connection[Any],
    *,
    since: dt.datetime | str | None = None,
    until: dt.datetime | str | None = None,
    tenant: str | None = None,
    table: str | None = None,
    limit: int | None = None,
) -> list[Delivery]:
    """Refused / unusable deliveries not resolved yet, oldest first. `table` is a target
    or a source table name (a refusal for a source table mapped since then counts)."""
    rows = conn.execute(
        """
        SELECT r.log_id, r.outcome, r.received_at, r.tenant_id::text,
               coalesce(r.target_table, r.source_table), r.error
          FROM optiqoflow.refused_deliveries r
         WHERE r.resolved_at IS NULL
           AND (%(since)s::timestamptz IS NULL OR r.received_at >= %(since)s::timestamptz)
           AND (%(until)s::timestamptz IS NULL OR r.received_at < %(until)s::timestamptz)
           AND (%(tenant)s::uuid IS NULL OR r.tenant_id = %(tenant)s::uuid)
           AND (%(table)s::text IS NULL OR %(table)s IN (r.target_table, r.source_table)
                OR r.source_table IN (SELECT m.source_table FROM optiqoflow.table_mappings m
                                       WHERE m.target_table = %(table)s))
         ORDER BY r.received_at, r.log_id
         LIMIT %(limit)s
        """,
        {"since": since, "until": until, "tenant": tenant, "table": table, "limit": limit},
    ).fetchall()
    return [Delivery(*row) for row in rows]


def _describe(conn: psycopg.Connection[Any], log_ids: Sequence[int]) -> list[Delivery]:
    """The deliveries named by id, as far as they are known (refused_deliveries, else the log)."""
    found = {
        row[0]: Delivery(*row)
        for row in conn.execute(
            """
            SELECT r.log_id, r.outcome, r.received_at, r.tenant_id::text,
                   coalesce(r.target_table, r.source_table), r.error, r.resolved_at, r.resolved_by
              FROM optiqoflow.refused_deliveries r WHERE r.log_id = ANY (%(ids)s)
            UNION ALL
            SELECT l.id, l.outcome, l.received_at, l.tenant_id::text,
                   coalesce(l.target_table, l.source_table), l.error, l.resolved_at, l.resolved_by
              FROM optiqoflow.webhook_logs l
             WHERE l.id = ANY (%(ids)s)
               AND NOT EXISTS (SELECT FROM optiqoflow.refused_deliveries r WHERE r.log_id = l.id)
            """,
            {"ids": list(log_ids)},
        )
    }
    return [found.get(i, Delivery(i)) for i in log_ids]


def replay(
    conn: psycopg.Connection[Any], deliveries: Iterable[Delivery], *, dry_run: bool = False
) -> list[dict[str, Any]]:
    """Replay each delivery in its own transaction through optiqoflow.replay_webhook (rolled
    back when dry_run: each is then tried alone against the current state). Returns one
    report per delivery: what it was, and replay_webhook's answer (or the error raised).
    A delivery that was applied (or a refusal resolved since) is not replayed: its status
    is "nothing to replay", its answer says why."""
    reports = []
    for d in deliveries:
        report: dict[str, Any] = {
            "log_id": d.log_id, "was": d.outcome, "received_at": d.received_at,
            "tenant_id": d.tenant_id, "table": d.table, "dry_run": dry_run,
        }  # fmt: skip
        if d.settled:
            report.update(status=NOTHING_TO_REPLAY, answer={"reason": d.settled})
            reports.append(report)
            continue
        try:
            with conn.transaction(force_rollback=dry_run):
                row = conn.execute("SELECT optiqoflow.replay_webhook(%s)", (d.log_id,)).fetchone()
            assert row is not None
            report["answer"] = row[0]
            report["status"] = row[0].get("status")
        except psycopg.Error as e:
            report["status"] = "error"
            report["answer"] = {
                "error": e.diag.message_primary or str(e),
                "sqlstate": e.sqlstate,
                "hint": e.diag.message_hint,
            }
        reports.append(report)
    return reports


def _replay_line(r: dict[str, Any]) -> str:
    a = r["answer"]
    what = f"log {r['log_id']}"
    if r["was"]:
        what += f" ({r['was']}, {r['table'] or 'no table'}, tenant {r['tenant_id'] or '-'})"
    if r["status"] == NOTHING_TO_REPLAY:
        return f"{what}: {a['reason']}, nothing to replay"
    if r["status"] == HELD:
        return f"{what}: {a['reason']}"
    if r["status"] == "error":
        return f"{what}: cannot replay: {a['error']} [{a['sqlstate']}]" + (
            f"\n    hint: {a['hint']}" if a.get("hint") else ""
        )
    verb = "would be" if r["dry_run"] else "now"
    line = f"{what}: {verb} {r['status']}, rows {a.get('rows', 0)}"
    if r["status"] == "refused":
        line += f": {a.get('error')} [{a.get('sqlstate')}]"
    if not r["dry_run"]:
        line += f" (new log {a.get('log_id')})"
    return line


def _iso_time(option: str, value: str | None) -> dt.datetime | None:
    """An ISO 8601 time as datetime.fromisoformat reads it (without an offset: the
    database session's time zone); anything else is a usage error, even what PostgreSQL
    would read ('yesterday', 'now', 'epoch')."""
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{option} {value!r} is not an ISO 8601 time (e.g. 2026-11-26T00:00Z)"
        ) from None


def _run_replay(args: argparse.Namespace) -> int:
    selectors = [args.since, args.until, args.tenant, args.table]
    if not args.log_id and not any(selectors):
        raise UsageError("say what to replay: --log-id N, --since/--until, --tenant or --table")
    if args.log_id and any(selectors):
        raise UsageError("--log-id cannot be combined with the other filters")
    tenant = _canonical_tenant(args.tenant) if args.tenant else None
    since, until = _iso_time("--since", args.since), _iso_time("--until", args.until)
    held: dict[int, str] = {}
    with target("replay") as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        if args.log_id:
            deliveries = _describe(conn, args.log_id)
        else:
            deliveries = waiting_deliveries(
                conn, since=since, until=until, tenant=tenant, table=args.table,
                limit=args.limit,
            )  # fmt: skip
            held = removals(conn, [d.log_id for d in deliveries]) if not args.allow_removals else {}
            deliveries = [d for d in deliveries if d.log_id not in held]
        reports = replay(conn, deliveries, dry_run=args.dry_run)
        if not args.log_id:
            reports += [
                {"log_id": log_id, "status": HELD, "answer": {"reason": why}, "was": None,
                 "dry_run": args.dry_run}
                for log_id, why in held.items()
            ]  # fmt: skip
    done = [r for r in reports if r["status"] not in (NOTHING_TO_REPLAY, HELD)]
    resolved = sum(r["status"] in RESOLVED for r in done)
    refused = sum(r["status"] != "error" for r in done) - resolved
    if args.json:
        print(_dumps({"dry_run": args.dry_run, "replayed": reports}))
    elif not reports:
        print("optiqoflow replay: no waiting delivery matches")
    else:
        for r in reports:
            print(_replay_line(r))
        if done:
            would = "would be " if args.dry_run else ""
            summary = f"{len(done)} replayed: {resolved} {would}resolved, {refused} still waiting"
            if failed := len(done) - resolved - refused:
                summary += f", {failed} could not be replayed"
            if skipped := len(reports) - len(done) - len(held):
                summary += f"; {skipped} with nothing to replay"
            if held:
                summary += f"; {len(held)} held back: they would remove rows (--allow-removals)"
            if args.dry_run:
                summary += " (dry run: rolled back, nothing changed)"
            print(summary)
        elif held:
            print(f"{len(held)} held back: they would remove rows (--allow-removals replays them)")
    return 0 if resolved == len(done) and not held else 1


# A bulk replay applies what may have waited for days: one that would remove rows (a
# DELETE, a FULL_SYNC batch, which may start or complete a run, a BATCH with DELETE
# events) runs only when asked for by name (--log-id) or with --allow-removals.
REMOVALS_SQL = """
SELECT r.log_id,
       CASE WHEN upper(r.payload ->> 'type') = 'DELETE' THEN 'a DELETE'
            WHEN upper(r.payload ->> 'type') = 'FULL_SYNC'
                THEN 'a FULL_SYNC batch (it may start or complete a run, which removes rows)'
            WHEN upper(r.payload ->> 'type') = 'BATCH' AND jsonb_typeof(r.payload -> 'events') = 'array'
                 AND EXISTS (SELECT FROM jsonb_array_elements(r.payload -> 'events') e
                              WHERE upper(e ->> 'type') = 'DELETE')
                THEN 'a BATCH with DELETE events'
       END
  FROM optiqoflow.refused_deliveries r
 WHERE r.log_id = ANY (%s)
"""


def removals(conn: psycopg.Connection[Any], log_ids: Sequence[int]) -> dict[int, str]:
    """Of these waiting deliveries, those whose replay would remove rows, and why."""
    return {
        log_id: f"not replayed: {why} would remove rows; pass --allow-removals to replay it"
        for log_id, why in conn.execute(REMOVALS_SQL, (list(log_ids),))
        if why is not None
    }


# --- status ------------------------------------------------------------------------------

STATUS_SQL = """
SELECT h.*, now() AS as_of
  FROM optiqoflow.sync_health h
 WHERE %(tenants)s::uuid[] IS NULL OR h.tenant_id = ANY (%(tenants)s::uuid[])
 ORDER BY h.tenant_id NULLS LAST, h.target_table NULLS LAST
"""


def sync_health(
    conn: psycopg.Connection[Any], tenants: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The rows of optiqoflow.sync_health (optionally for some tenants only)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(STATUS_SQL, {"tenants": list(tenants) if tenants else None}).fetchall()


def _age(then: dt.datetime | None, now: dt.datetime) -> str:
    if then is None:
        return "-"
    s = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def _ms(value: int | None) -> str:
    if value is None:
        return "-"
    if abs(value) < 1000:
        return f"{value}ms"
    if abs(value) < 60_000:
        return f"{value / 1000:.1f}s"
    if abs(value) < 3_600_000:
        return f"{value / 60_000:.1f}m"
    return f"{value / 3_600_000:.1f}h"


def _full_sync(row: dict[str, Any], now: dt.datetime) -> str:
    state = row["full_sync_state"]
    if state is None:
        return "-"
    if state == "running":
        done = (
            f" {row['full_sync_records']}/{row['full_sync_total']}"
            if row["full_sync_total"]
            else ""
        )
        return f"running{done}, last batch {_age(row['full_sync_last_batch_at'], now)}"
    return f"{state} {_age(row['full_sync_finished_at'] or row['full_sync_started_at'], now)}"


STATUS_COLUMNS = (
    "TENANT", "TABLE", "ROWS", "LAST PUSH", "FULL SYNC", "LAG p50/max", "DELIV 1h",
    "STALE 1h", "DUP 1h", "REFUSED",
)  # fmt: skip


def render_status(rows: Sequence[dict[str, Any]], settings: dict[str, str] | None = None) -> str:
    """A plain-text table of sync_health rows, one line per tenant x table, then the
    database-wide settings (where row-level security reads the tenant claim)."""
    now = rows[0]["as_of"] if rows else dt.datetime.now(dt.UTC)
    lines = [list(STATUS_COLUMNS)]
    for r in rows:
        lag = (
            "-"
            if r["lag_ms_p50_1h"] is None
            else f"{_ms(r['lag_ms_p50_1h'])}/{_ms(r['lag_ms_max_1h'])}"
        )
        lines.append([
            str(r["tenant_id"]) if r["tenant_id"] else "(no tenant)",
            r["target_table"] or "(no table)",
            "-" if r["rows"] is None else str(r["rows"]),
            _age(r["last_push_at"], now),
            _full_sync(r, now),
            lag,
            str(r["deliveries_1h"]),
            str(r["stale_1h"]),
            str(r["duplicate_1h"]),
            str(r["refused_waiting"]) if r["refused_waiting"] else "-",
        ])  # fmt: skip
    numeric = {2, 6, 7, 8, 9}
    widths = [max(len(line[i]) for line in lines) for i in range(len(STATUS_COLUMNS))]
    out = [
        "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    ]
    waiting = sum(int(r["refused_waiting"]) for r in rows)
    out.append(
        f"{len(rows)} tenant x table pairs; {waiting} refused deliveries waiting (optiqoflow replay)"
    )
    if settings:
        out.append("tenant claim (row-level security): " + settings.get("tenant_claim", "tenant_id"))
    return "\n".join(out)


def settings(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """optiqoflow.settings as a dict ({} on a database migrated before it existed)."""
    try:
        with conn.transaction():
            return dict(conn.execute("SELECT key, value FROM optiqoflow.settings").fetchall())
    except psycopg.errors.UndefinedTable:
        return {}


def _run_status(args: argparse.Namespace) -> int:
    tenants = [_canonical_tenant(t) for t in args.tenant] if args.tenant else None
    interactive = sys.stdout.isatty()
    with target("status") as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        try:
            while True:
                rows = sync_health(conn, tenants)
                if args.json:
                    print(_dumps(rows, indent=None if args.watch else 2), flush=True)
                else:
                    if args.watch and interactive:
                        print("\x1b[H\x1b[2J", end="")  # clear the screen, cursor home
                    print(render_status(rows, settings(conn)), flush=True)
                if not args.watch:
                    return 0
                time.sleep(args.watch)
        except KeyboardInterrupt:  # Ctrl-C ends --watch
            return 0


# --- reconcile ---------------------------------------------------------------------------


@dataclass
class Pair:
    tenant_id: str
    source_table: str
    target_table: str
    source_rows: int
    source_checksum: Decimal
    target_rows: int
    target_checksum: Decimal

    @property
    def drifted(self) -> bool:
        return (self.source_rows, self.source_checksum) != (self.target_rows, self.target_checksum)


@dataclass
class Reconciliation:
    pairs: list[Pair] = field(default_factory=list)
    missing_on_source: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> list[Pair]:
        return [p for p in self.pairs if p.drifted]

    def as_json(self) -> dict[str, Any]:
        return {
            "checked": len(self.pairs),
            "drifted": [vars(p) for p in self.drifted],
            "missing_on_source": self.missing_on_source,
        }


def source_fingerprints(
    target: psycopg.Connection[Any],
    source: psycopg.Connection[Any],
    source_table: str,
    tenants: Sequence[str] | None,
) -> dict[str, tuple[int, Decimal]]:
    """tenant -> (row_count, checksum) of one source table (schema optiqo), by the query
    that optiqoflow.fingerprint_query on the target defines: the one formula."""
    row = target.execute(
        "SELECT optiqoflow.fingerprint_query('optiqo', %s)", (source_table,)
    ).fetchone()
    assert row is not None
    cursor = psycopg.RawCursor(source)  # the query's parameter is $1
    return {
        str(tenant): (int(count), Decimal(checksum))
        for tenant, count, checksum in cursor.execute(row[0], (list(tenants) if tenants else None,))
    }


def reconcile(
    target: psycopg.Connection[Any],
    source: psycopg.Connection[Any],
    *,
    tenants: Sequence[str] | None = None,
    tables: Sequence[str] | None = None,
) -> Reconciliation:
    """Compare optiqoflow.table_fingerprint with the source's fingerprint for every tenant
    x table that has rows (or pushed) on either side."""
    result = Reconciliation()
    mappings = target.execute(
        """
        SELECT m.source_table, m.target_table FROM optiqoflow.table_mappings m
         WHERE %(tables)s::text[] IS NULL OR m.source_table = ANY (%(tables)s) OR m.target_table = ANY (%(tables)s)
         ORDER BY m.source_table
        """,
        {"tables": list(tables) if tables else None},
    ).fetchall()
    for source_table, target_table in mappings:
        exists = source.execute("SELECT to_regclass(%s)", (f"optiqo.{source_table}",)).fetchone()
        if exists is None or exists[0] is None:
            result.missing_on_source.append(source_table)
            continue
        src = source_fingerprints(target, source, source_table, tenants)
        known = {
            str(t)
            for (t,) in target.execute(
                "SELECT a.tenant_id FROM tenants.tenant_column_access a WHERE a.table_name = %s",
                (target_table,),
            )
        }
        candidates = sorted((known | set(src)) & set(tenants) if tenants else known | set(src))
        for tenant, count, checksum in target.execute(
            """
            SELECT t.tenant_id::text, f.row_count, f.checksum
              FROM unnest(%s::uuid[]) AS t(tenant_id),
                   LATERAL optiqoflow.table_fingerprint(t.tenant_id, %s) f
             ORDER BY 1
            """,
            (candidates, target_table),
        ):
            s_count, s_sum = src.get(tenant, (0, Decimal(0)))
            result.pairs.append(
                Pair(
                    tenant,
                    source_table,
                    target_table,
                    s_count,
                    s_sum,
                    int(count),
                    Decimal(checksum),
                )
            )
    return result


def _snapshot(conn: psycopg.Connection[Any]) -> None:
    """One read-only, consistent snapshot for every table read in this run."""
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True


def _run_reconcile(args: argparse.Namespace) -> int:
    tenants = [_canonical_tenant(t) for t in args.tenant] if args.tenant else None
    source_dsn = check_dsn(args.source_dsn, "--source-dsn")
    with (
        target("reconcile") as dsn,
        psycopg.connect(dsn) as ours,
        psycopg.connect(source_dsn) as source,
    ):
        _snapshot(ours)
        _snapshot(source)
        report = reconcile(ours, source, tenants=tenants, tables=args.table or None)
    if args.json:
        print(_dumps(report.as_json()))
    else:
        for p in report.drifted:
            print(
                f"DRIFT tenant {p.tenant_id} {p.source_table} -> {p.target_table}: "
                f"source {p.source_rows} rows (checksum {p.source_checksum}), "
                f"target {p.target_rows} rows (checksum {p.target_checksum})"
            )
        for t in report.missing_on_source:
            print(f"skipped: optiqo.{t} does not exist on the source")
        print(f"{len(report.pairs)} tenant x table pairs compared, {len(report.drifted)} drifted")
    return 1 if report.drifted else 0


# --- registration ------------------------------------------------------------------------


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "prune",
        help="drop log partitions and delete de-duplication keys past the retention",
        description="Calls optiqoflow.prune_logs(retention) until it is done. Schedule it daily.",
    )
    p.add_argument("--retention", default="7 days", help="a PostgreSQL interval (default: 7 days)")
    p.add_argument(
        "--refused-retention",
        help="how long unresolved refused deliveries are kept (default: 30 days, or --retention "
        "when longer; never shorter than it)",
    )
    p.add_argument("--json", action="store_true", help="print what was done as JSON")
    p.set_defaults(func=_run_prune)

    p = sub.add_parser(
        "replay",
        help="re-apply refused or unusable deliveries",
        description=(
            "Replays deliveries through optiqoflow.replay_webhook, each in its own transaction: "
            "one by --log-id, or every waiting (unresolved) delivery matching --since/--until, "
            "--tenant and --table. A replay is logged with replay_of = the original; a delivery "
            "that now applies is marked resolved. Exit 1 when any is still refused."
        ),
    )
    p.add_argument("--log-id", type=int, action="append", help="a webhook_logs id (repeatable)")
    p.add_argument("--since", help="received at or after this time (ISO 8601)")
    p.add_argument("--until", help="received before this time (ISO 8601)")
    p.add_argument("--tenant", help="a tenant UUID")
    p.add_argument("--table", help="a target or source table name")
    p.add_argument("--limit", type=int, help="replay at most this many")
    p.add_argument(
        "--dry-run", action="store_true", help="apply each inside a transaction, report, roll back"
    )
    p.add_argument(
        "--allow-removals",
        action="store_true",
        help="also replay, when selected by --since/--until/--tenant/--table, deliveries that "
        "would remove rows (DELETE, FULL_SYNC batches, BATCH envelopes with DELETE events)",
    )
    p.add_argument("--json", action="store_true", help="print the answers as JSON")
    p.set_defaults(func=_run_replay)

    p = sub.add_parser(
        "status",
        help="sync health per tenant x table (the view optiqoflow.sync_health)",
    )
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument(
        "--watch", type=float, metavar="N", help="refresh every N seconds (Ctrl-C stops)"
    )
    p.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
    p.set_defaults(func=_run_status)

    p = sub.add_parser(
        "reconcile",
        help="compare table fingerprints with the Optiqo source database",
        description=(
            "Computes optiqoflow.table_fingerprint for each tenant x table and the same "
            "fingerprint on the source (schema optiqo); lists the pairs that differ. "
            "Exit 1 when any drifted."
        ),
    )
    p.add_argument("--source-dsn", required=True, help="the Optiqo source database (read only)")
    p.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
    p.add_argument("--table", action="append", help="only this source or target table (repeatable)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_run_reconcile)
