"""`optiqoflow charts deps`: which synced tables each chart reads.

A chart's SQL (`public.charts.query`) is parsed with sqlglot (PostgreSQL dialect) and
walked with its scope analysis, so a CTE, a derived table or a lateral subquery is
never mistaken for a table, even when it shadows one (`WITH work_orders AS (...)`).
Three spellings name a synced table X (a `target_table` of `optiqoflow.table_mappings`):

- `optiqoflow.X`;
- `tenants."{tenant_uuid}_X"`, a tenant view (canonical lower-case uuid);
- plain `X`, unqualified. Whether it reaches `optiqoflow.X` depends on the search_path
  the dashboard runs with, which we cannot see; a needless dependency costs one extra
  cache invalidation, a missing one leaves a chart stale, so it counts.

Anything else (other schemas, catalogs, table functions) is not a synced table.
`sync_dependencies` rewrites `public.chart_table_dependencies` to match.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.scope import traverse_scope

from operations.database import target

_TENANT_VIEW = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}_(?P<table>.+)$"
)
_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge)


class ChartSQLError(ParseError):
    """A chart's SQL that cannot be analysed: unparsable, empty, several statements,
    not a query, or a query that writes."""


def _parse(sql_text: str) -> exp.Query:
    try:
        parsed = sqlglot.parse(sql_text, read="postgres")
    except SqlglotError as e:
        message = str(e)  # several lines with ANSI highlights: keep the first error's words
        if errors := getattr(e, "errors", None):
            first = errors[0]
            message = f"{first['description']} at line {first['line']}, column {first['col']}"
        raise ChartSQLError(f"does not parse: {message}") from e
    statements = [s for s in parsed if s is not None]
    if not statements:
        raise ChartSQLError("empty query")
    if len(statements) > 1:
        raise ChartSQLError(f"{len(statements)} statements, a chart runs one query")
    query = statements[0]
    if not isinstance(query, exp.Query):
        raise ChartSQLError(f"not a query (parsed as {query.key.upper()})")
    write = query.find(*_WRITES)
    if write is not None:
        raise ChartSQLError(f"a chart query must not write ({write.key.upper()})")
    return query


def _synced_name(table: exp.Table, synced: set[str]) -> str | None:
    if not isinstance(table.this, exp.Identifier):  # generate_series(...), a.b.c.d
        return None
    schema, name = table.db, table.name
    if schema == "tenants" and (m := _TENANT_VIEW.match(name)):
        name = m["table"]
    elif schema not in ("", "optiqoflow"):
        return None
    return name if name in synced else None


def tables_read(sql_text: str, synced: set[str]) -> set[str]:
    """The synced target tables `sql_text` reads. Raises ChartSQLError."""
    query = normalize_identifiers(_parse(sql_text), dialect="postgres")
    scopes = traverse_scope(query)
    seen = {id(t) for scope in scopes for t in scope.tables}
    if any(id(t) not in seen for t in query.find_all(exp.Table)):
        # Never answer with a partial set: a missed table means a stale chart.
        raise ChartSQLError("a table reference escaped scope analysis")
    found = set()
    for scope in scopes:
        for source in scope.sources.values():  # a Scope for CTEs and subqueries
            if isinstance(source, exp.Table) and (name := _synced_name(source, synced)):
                found.add(name)
    return found


# --- the database --------------------------------------------------------------------


@dataclass(frozen=True)
class ChartDeps:
    chart_id: UUID
    title: str | None
    tables: frozenset[str]  # after the sync; for an error, the rows kept from before
    error: str | None = None

    @property
    def problem(self) -> str | None:
        if self.error:
            return self.error
        return None if self.tables else "reads no synced table"


@dataclass(frozen=True)
class Report:
    charts: list[ChartDeps]
    added: int
    removed: int
    strict: bool

    @property
    def problems(self) -> list[ChartDeps]:
        return [c for c in self.charts if c.problem]

    @property
    def failed(self) -> bool:
        return self.strict and bool(self.problems)

    def as_json(self) -> dict[str, Any]:
        return {
            "charts": [
                {
                    "id": str(c.chart_id),
                    "title": c.title,
                    "tables": sorted(c.tables),
                    "error": c.error,
                    "problem": c.problem,
                }
                for c in self.charts
            ],
            "added": self.added,
            "removed": self.removed,
            "problems": len(self.problems),
        }


def _pairs(rows: Iterable[tuple[UUID, str]]) -> tuple[list[UUID], list[str]]:
    ordered = sorted(rows)
    return [c for c, _ in ordered], [t for _, t in ordered]


def sync_dependencies(conn: psycopg.Connection[Any], strict: bool = False) -> Report:
    """Recompute every chart's dependencies and rewrite public.chart_table_dependencies,
    in one transaction, touching only rows that change.

    A chart whose SQL cannot be analysed keeps its previous rows (PostgreSQL may still
    run SQL that sqlglot rejects, and dropping its rows would leave it stale). `strict`
    does not change what is written; it makes the report `failed` when any chart has a
    problem.
    """
    with conn.transaction():
        # Serialise concurrent runs; readers (cache invalidation) are not blocked.
        conn.execute("LOCK TABLE public.chart_table_dependencies IN SHARE ROW EXCLUSIVE MODE")
        synced = {t for (t,) in conn.execute("SELECT target_table FROM optiqoflow.table_mappings")}
        current: set[tuple[UUID, str]] = {
            (c, t)
            for c, t in conn.execute(
                "SELECT chart_id, table_name FROM public.chart_table_dependencies"
            )
        }
        charts: list[ChartDeps] = []
        wanted: set[tuple[UUID, str]] = set()
        for chart_id, title, query in conn.execute(
            "SELECT id, title, query FROM public.charts ORDER BY id"
        ):
            try:
                tables = frozenset(tables_read(query or "", synced))
                error = None
            except ChartSQLError as e:
                tables = frozenset(t for c, t in current if c == chart_id)
                error = str(e)
            charts.append(ChartDeps(chart_id, title, tables, error))
            wanted |= {(chart_id, t) for t in tables}
        gone, new = current - wanted, wanted - current
        if gone:
            conn.execute(
                "DELETE FROM public.chart_table_dependencies"
                " WHERE (chart_id, table_name) IN (SELECT * FROM unnest(%s::uuid[], %s::text[]))",
                _pairs(gone),
            )
        if new:
            conn.execute(
                "INSERT INTO public.chart_table_dependencies (chart_id, table_name)"
                " SELECT * FROM unnest(%s::uuid[], %s::text[])",
                _pairs(new),
            )
    return Report(charts, added=len(new), removed=len(gone), strict=strict)


# --- the command line ----------------------------------------------------------------


def _print_text(report: Report) -> None:
    for c in report.charts:
        what = ", ".join(sorted(c.tables)) or "-"
        if c.error:
            what = f"ERROR {c.error} (kept: {what})"
        elif not c.tables:
            what = "- (reads no synced table)"
        print(f"{c.chart_id}  {c.title or ''!r}: {what}")
    print(
        f"{len(report.charts)} charts, {len(report.problems)} with problems;"
        f" {report.added} dependencies added, {report.removed} removed"
    )


def _run_deps(args: argparse.Namespace) -> int:
    with target("charts deps") as dsn, psycopg.connect(dsn) as conn:
        report = sync_dependencies(conn, strict=args.strict)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        _print_text(report)
    return 1 if report.failed else 0


def register(sub: Any) -> None:
    charts: argparse.ArgumentParser = sub.add_parser("charts", help="dashboard charts")
    charts_sub = charts.add_subparsers(dest="charts_command", required=True, metavar="COMMAND")
    p: argparse.ArgumentParser = charts_sub.add_parser(
        "deps",
        help="recompute public.chart_table_dependencies from each chart's SQL",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if a chart's SQL does not parse or reads no synced table",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_run_deps)
