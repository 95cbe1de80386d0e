"""`optiqoflow converge-check`: does the destination hold what the source holds?

Per tenant x table: the source rows (schema `optiqo`) against optiqoflow.<target> —
the same ids (deleted rows gone), the same values column by column after type-aware
normalisation (numbers by value, instants in UTC, arrays and JSON by content), no row
shadowed by a tombstone, and optiqoflow.table_fingerprint equal to the source's.
Every tenant view tenants."{uuid}_{target}" shows exactly that tenant's rows and the
columns it pushed. When the source keeps the simulator's outbox and sender log, every
delivery answered 2xx must be in optiqoflow.webhook_logs with the same outcome, none
applied twice, and every sent delivery answered 2xx in the end.

Callable as `check(source_dsn, target_dsn)`; the command prints the differences table
by table and exits 1 on drift.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from operations.ops import source_fingerprints


def normalise(value: Any) -> Any:
    """A value in a form that compares equal across PostgreSQL types that hold the same
    thing: numbers by value (12.30 = 12.3, integer = numeric), instants in UTC, UUIDs as
    text, arrays and JSON by content."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | Decimal):
        return Decimal(value).normalize() if Decimal(value).is_finite() else value
    if isinstance(value, float):
        return Decimal(repr(value)).normalize()
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return tuple(normalise(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, normalise(v)) for k, v in value.items()))
    return str(value)


@dataclass
class TableReport:
    source_table: str
    target_table: str
    source_rows: int = 0
    target_rows: int = 0
    missing: int = 0
    extra: int = 0
    differing: int = 0
    fingerprints_differing: int = 0
    tombstoned_visible: int = 0
    view_problems: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.missing
            or self.extra
            or self.differing
            or self.fingerprints_differing
            or self.tombstoned_visible
            or self.view_problems
        )

    def note(self, text: str, limit: int) -> None:
        if len(self.examples) < limit:
            self.examples.append(text)


@dataclass
class DeliveryReport:
    known: bool = False
    answered_2xx: int = 0
    logged: int = 0
    not_logged: int = 0
    outcome_differs: int = 0
    applied_twice: int = 0
    never_acknowledged: int = 0
    refused: int = 0
    never_sent: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.not_logged
            or self.outcome_differs
            or self.applied_twice
            or self.never_acknowledged
            or self.refused
        )


@dataclass
class Report:
    tenants: int
    tables: list[TableReport]
    deliveries: DeliveryReport

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables) and self.deliveries.ok

    def render(self) -> str:
        head = (
            f"{'table':<24} {'target':<22} {'source':>7} {'target':>7} {'missing':>7} {'extra':>6} "
            f"{'differ':>6} {'fprint':>6} {'tomb':>5} {'views':>5}  result"
        )
        lines = [f"convergence of {self.tenants} tenant(s)", head, "-" * len(head)]
        for t in self.tables:
            lines.append(
                f"{t.source_table:<24} {t.target_table:<22} {t.source_rows:>7} {t.target_rows:>7} "
                f"{t.missing:>7} {t.extra:>6} {t.differing:>6} {t.fingerprints_differing:>6} "
                f"{t.tombstoned_visible:>5} {t.view_problems:>5}  {'ok' if t.ok else 'DRIFT'}"
            )
            lines += [f"    {e}" for e in t.examples]
        d = self.deliveries
        if d.known:
            lines.append(
                f"deliveries: {d.answered_2xx} answered 2xx, {d.logged} found in webhook_logs, "
                f"{d.not_logged} not logged, {d.outcome_differs} with another outcome, "
                f"{d.applied_twice} applied twice, {d.never_acknowledged} never acknowledged, "
                f"{d.refused} refused, {d.never_sent} never sent (lost on purpose)"
            )
            lines += [f"    {e}" for e in d.examples]
        rows = sum(t.source_rows for t in self.tables)
        lines.append(
            f"CONVERGED: {rows} rows in {len(self.tables)} tables match"
            if self.ok
            else f"DRIFT in {sum(not t.ok for t in self.tables)} table(s)"
            + ("" if self.deliveries.ok else " and in the deliveries")
        )
        return "\n".join(lines)


def _exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def _columns(conn: psycopg.Connection[Any], schema: str, table: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (f'{schema}."{table}"',),
        )
    ]


def _rows(
    conn: psycopg.Connection[Any], query: sql.Composed, params: Iterable[Any]
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, tuple(params))
        return cur.fetchall()


def check(source_dsn: str, target_dsn: str, *, examples: int = 5) -> Report:
    """Compare source and destination; see the module's docstring."""
    with (
        psycopg.connect(source_dsn, autocommit=True) as src,
        psycopg.connect(target_dsn, autocommit=True) as tgt,
    ):
        for c in (src, tgt):
            c.execute("SET TimeZone = 'UTC'")
        mapping: dict[str, str] = dict(
            tgt.execute(
                "SELECT source_table, target_table FROM optiqoflow.table_mappings"
            ).fetchall()
        )
        source_tables = [
            r[0]
            for r in src.execute(
                "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'optiqo' AND c.relkind = 'r' ORDER BY 1"
            )
        ]
        source_tables = [t for t in source_tables if t in mapping]
        if _exists(src, "optiqo.tenant_modules"):
            tenants = [
                r[0] for r in src.execute("SELECT tenant_id FROM optiqo.tenant_modules ORDER BY 1")
            ]
        else:
            tenants = sorted(
                {
                    r[0]
                    for t in source_tables
                    for r in src.execute(
                        sql.SQL("SELECT DISTINCT tenant_id FROM optiqo.{}").format(
                            sql.Identifier(t)
                        )
                    )
                }
            )
        pushed = _pushed_by_outbox(src) if _exists(src, "optiqo.outbox") else None
        tables = [
            _check_table(src, tgt, t, mapping[t], tenants, pushed, examples) for t in source_tables
        ]
        deliveries = (
            _check_deliveries(src, tgt, examples)
            if _exists(src, "optiqo.deliveries")
            else DeliveryReport()
        )
    return Report(len(tenants), tables, deliveries)


def _pushed_by_outbox(src: psycopg.Connection[Any]) -> dict[tuple[UUID, str], set[str]]:
    """Keys each tenant ever sent with a non-null value, per source table."""
    out: dict[tuple[UUID, str], set[str]] = defaultdict(set)
    for tenant, table, keys in src.execute(
        "SELECT (o.payload ->> 'tenant_id')::uuid, o.payload ->> 'table', array_agg(DISTINCT kv.key) "
        "  FROM optiqo.outbox o "
        " CROSS JOIN LATERAL (SELECT o.payload -> 'record' AS r WHERE jsonb_typeof(o.payload -> 'record') = 'object' "
        "                     UNION ALL SELECT e FROM jsonb_array_elements(CASE WHEN jsonb_typeof(o.payload -> 'records') = 'array' "
        "                                                                  THEN o.payload -> 'records' ELSE '[]' END) e) recs "
        " CROSS JOIN LATERAL jsonb_each(recs.r) kv "
        " WHERE jsonb_typeof(kv.value) <> 'null' GROUP BY 1, 2"
    ):
        out[(tenant, table)].update(keys)
    return out


def _check_table(
    src: psycopg.Connection[Any],
    tgt: psycopg.Connection[Any],
    table: str,
    target: str,
    tenants: list[UUID],
    pushed: dict[tuple[UUID, str], set[str]] | None,
    limit: int,
) -> TableReport:
    rep = TableReport(table, target)
    src_cols = _columns(src, "optiqo", table)
    tgt_cols = _columns(tgt, "optiqoflow", target)
    src_rows = _rows(
        src,
        sql.SQL("SELECT * FROM optiqo.{} WHERE tenant_id = ANY(%s)").format(sql.Identifier(table)),
        [tenants],
    )
    tgt_rows = (
        _rows(
            tgt,
            sql.SQL("SELECT * FROM optiqoflow.{} WHERE tenant_id = ANY(%s)").format(
                sql.Identifier(target)
            ),
            [tenants],
        )
        if tgt_cols
        else []
    )
    source = {(r["tenant_id"], r["id"]): r for r in src_rows}
    dest = {(r["tenant_id"], r["id"]): r for r in tgt_rows}
    rep.source_rows, rep.target_rows = len(source), len(dest)

    for key in sorted(source.keys() - dest.keys(), key=str):
        rep.missing += 1
        rep.note(
            f"missing: tenant {key[0]} id {key[1]} (updated_at {source[key]['updated_at']})", limit
        )
    for key in sorted(dest.keys() - source.keys(), key=str):
        rep.extra += 1
        rep.note(f"extra (deleted at the source): tenant {key[0]} id {key[1]}", limit)
    for key in source.keys() & dest.keys():
        diffs = _differences(source[key], dest[key], src_cols)
        if diffs:
            rep.differing += 1
            rep.note(f"differs: tenant {key[0]} id {key[1]}: " + "; ".join(diffs[:4]), limit)

    fingerprints = source_fingerprints(tgt, src, table, [str(t) for t in tenants])
    for tenant in tenants:
        s = fingerprints.get(str(tenant), (0, Decimal(0)))
        t = tgt.execute(
            "SELECT row_count, checksum FROM optiqoflow.table_fingerprint(%s, %s)", (tenant, target)
        ).fetchone()
        if s is None or t is None or (s[0], Decimal(s[1])) != (t[0], Decimal(t[1])):
            rep.fingerprints_differing += 1
            rep.note(f"fingerprint: tenant {tenant}: source {s}, target {t}", limit)

    if tgt_cols:
        row = tgt.execute(
            sql.SQL(
                "SELECT count(*) FROM optiqoflow.tombstones tb JOIN optiqoflow.{} r "
                "ON r.tenant_id = tb.tenant_id AND r.id = tb.id "
                "WHERE tb.target_table = %s AND tb.tenant_id = ANY(%s)"
            ).format(sql.Identifier(target)),
            (target, tenants),
        ).fetchone()
        rep.tombstoned_visible = int(row[0]) if row else 0
        if rep.tombstoned_visible:
            rep.note(f"{rep.tombstoned_visible} row(s) visible although tombstoned", limit)

    by_tenant: dict[UUID, dict[UUID, dict[str, Any]]] = defaultdict(dict)
    for (tenant, rid), r in source.items():
        by_tenant[tenant][rid] = r
    for tenant in tenants:
        _check_view(
            src_cols,
            tgt,
            table,
            target,
            tenant,
            by_tenant.get(tenant, {}),
            pushed.get((tenant, table)) if pushed is not None else None,
            rep,
            limit,
        )
    return rep


def _differences(s: dict[str, Any], t: dict[str, Any], columns: list[str]) -> list[str]:
    diffs = []
    for col in columns:
        sv = s.get(col)
        if col not in t:
            if sv is not None:
                diffs.append(f"{col}: source {sv!r}, no such column in the target")
            continue
        if normalise(sv) != normalise(t[col]):
            diffs.append(f"{col}: source {sv!r}, target {t[col]!r}")
    return diffs


def _check_view(
    src_cols: list[str],
    tgt: psycopg.Connection[Any],
    table: str,
    target: str,
    tenant: UUID,
    rows: dict[UUID, dict[str, Any]],
    pushed: set[str] | None,
    rep: TableReport,
    limit: int,
) -> None:
    view = f"{tenant}_{target}"
    access = tgt.execute(
        "SELECT columns FROM tenants.tenant_column_access WHERE tenant_id = %s AND table_name = %s",
        (tenant, target),
    ).fetchone()
    exists = _exists(tgt, f'tenants."{view}"')

    def problem(text: str) -> None:
        rep.view_problems += 1
        rep.note(f"view {view}: {text}", limit)

    if access is None:
        if exists:
            problem("exists although the tenant pushed nothing")
        if rows:
            problem(f"missing: the tenant has {len(rows)} row(s) but no tracked columns")
        return
    tracked = set(access[0])
    if not exists:
        problem("missing")
        return
    shown = _columns(tgt, "tenants", view)
    if set(shown) != tracked | {"id", "tenant_id"}:
        problem(f"columns {sorted(shown)} are not id, tenant_id + tracked {sorted(tracked)}")
    needed = {c for r in rows.values() for c in src_cols if r.get(c) is not None} - {
        "id",
        "tenant_id",
    }
    if not needed <= set(shown):
        problem(f"hides pushed column(s) {sorted(needed - set(shown))}")
    if pushed is not None and not tracked <= pushed:
        problem(f"shows column(s) the tenant never pushed: {sorted(tracked - pushed)}")
    seen = _rows(tgt, sql.SQL("SELECT * FROM tenants.{}").format(sql.Identifier(view)), [])
    others = [r for r in seen if r.get("tenant_id") != tenant]
    if others:
        problem(f"shows {len(others)} row(s) of other tenants")
    got = {r["id"]: r for r in seen}
    if got.keys() != rows.keys():
        problem(
            f"{len(rows.keys() - got.keys())} row(s) missing, {len(got.keys() - rows.keys())} extra"
        )
    for rid in got.keys() & rows.keys():
        diffs = _differences(rows[rid], got[rid], [c for c in shown if c in src_cols])
        if diffs:
            problem(f"row {rid} differs: " + "; ".join(diffs[:3]))
            break


def _check_deliveries(
    src: psycopg.Connection[Any], tgt: psycopg.Connection[Any], limit: int
) -> DeliveryReport:
    rep = DeliveryReport(known=True)

    def note(text: str) -> None:
        if len(rep.examples) < limit:
            rep.examples.append(text)

    # The simulator signs with the plain scheme, whose delivery ids the receiver binds to
    # the body: `<id>#<hex SHA-256 of the body>` (receiver.body.bound_to_body). The body
    # it sent is the outbox payload's text, as UTF-8.
    answered = src.execute(
        "SELECT d.outbox_id, d.delivery_id, (d.answer ->> 'log_id')::bigint, "
        "       d.answer ->> 'status', "
        "       d.delivery_id || '#' || encode(sha256(convert_to(o.payload::text, 'UTF8')), 'hex') "
        "  FROM optiqo.deliveries d LEFT JOIN optiqo.outbox o ON o.id = d.outbox_id "
        " WHERE d.http_status BETWEEN 200 AND 299"
    ).fetchall()
    rep.answered_2xx = len(answered)
    logs = {
        r[0]: (r[1], r[2])
        for r in tgt.execute(
            "SELECT id, outcome, delivery_id FROM optiqoflow.webhook_logs WHERE id = ANY(%s)",
            ([a[2] for a in answered if a[2] is not None],),
        )
    }
    applied: dict[int, int] = defaultdict(int)
    for outbox_id, delivery_id, log_id, status, expected_id in answered:
        if log_id not in logs:
            rep.not_logged += 1
            note(f"delivery {delivery_id} answered {status} (log {log_id}) is not in webhook_logs")
            continue
        rep.logged += 1
        outcome, logged_id = logs[log_id]
        if outcome != status or logged_id != expected_id:
            rep.outcome_differs += 1
            note(f"delivery {delivery_id}: answered {status}, logged {outcome} for {logged_id}")
        if status == "applied":
            applied[outbox_id] += 1
    for outbox_id, n in applied.items():
        if n > 1:
            rep.applied_twice += 1
            note(f"outbox {outbox_id} was applied {n} times")
    for outbox_id, statuses in src.execute(
        "SELECT o.id, array_agg(DISTINCT d.http_status) FILTER (WHERE d.http_status IS NOT NULL) "
        "  FROM optiqo.outbox o LEFT JOIN optiqo.deliveries d ON d.outbox_id = o.id "
        " GROUP BY o.id HAVING NOT bool_or(coalesce(d.http_status BETWEEN 200 AND 299, false))"
    ):
        sent = src.execute(
            "SELECT count(*) FROM optiqo.deliveries WHERE outbox_id = %s", (outbox_id,)
        ).fetchone()
        if sent and sent[0]:
            rep.never_acknowledged += 1
            if statuses and 422 in statuses:
                rep.refused += 1
            note(f"outbox {outbox_id} never acknowledged (HTTP {statuses})")
        else:
            rep.never_sent += 1
    return rep


# --- command line ----------------------------------------------------------------------


def _command(args: argparse.Namespace) -> int:
    report = check(args.source_dsn, args.target_dsn, examples=args.examples)
    print(report.render())
    if args.json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "tables": [vars(t) for t in report.tables],
                    "deliveries": vars(report.deliveries),
                },
                default=str,
                indent=2,
            )
        )
    return 0 if report.ok else 1


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "converge-check",
        help="compare the Optiqo source tables with the synced destination",
        description=(__doc__ or "").split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("--source-dsn", required=True, help="the source database (schema optiqo)")
    p.add_argument(
        "--target-dsn", required=True, help="the destination database (schema optiqoflow)"
    )
    p.add_argument("--examples", type=int, default=5, help="differences shown per table")
    p.add_argument("--json", action="store_true", help="also print the report as JSON")
    p.set_defaults(func=_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(
        _command(
            argparse.Namespace(
                source_dsn=sys.argv[1], target_dsn=sys.argv[2], examples=5, json=False
            )
        )
    )
