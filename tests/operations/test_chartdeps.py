"""`optiqoflow charts deps`: the tables a chart's SQL reads, and the rows kept for them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from operations import cli
from operations.chartdeps import ChartSQLError, sync_dependencies, tables_read

SYNCED = {
    "work_orders", "attendance_events", "zones", "customers", "sites", "floors", "rooms",
    "tasks", "task_completions", "scheduled_work_orders", "audits", "audit_results",
    "deviations", "feedback", "employees", "teams", "shifts", "time_entries", "absences",
    "supply_orders", "sensor_readings",
}  # fmt: skip
T = "5b0c7f9e-1234-4abc-8def-0123456789ab"

READS: list[tuple[str, str, set[str]]] = [
    (
        "weekly completion rate with date_trunc and FILTER",
        """
        SELECT date_trunc('week', wo.created_at AT TIME ZONE 'Europe/Stockholm') AS week,
               count(*) FILTER (WHERE wo.status = 'completed')::numeric
                 / NULLIF(count(*), 0) AS completion_rate
        FROM optiqoflow.work_orders wo
        WHERE wo.created_at >= now() - interval '12 weeks'
        GROUP BY 1 ORDER BY 1
        """,
        {"work_orders"},
    ),
    (
        "running total and rank: window functions over a join",
        """
        SELECT s.name, d.day,
               sum(d.n) OVER (PARTITION BY s.id ORDER BY d.day
                              ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running,
               rank() OVER w AS rnk,
               lag(d.n, 1, 0) OVER (PARTITION BY s.id ORDER BY d.day) AS prev
        FROM (SELECT site_id, created_at::date AS day, count(*) AS n
              FROM optiqoflow.task_completions GROUP BY 1, 2) d
        JOIN optiqoflow.sites s ON s.id = d.site_id
        WINDOW w AS (PARTITION BY d.day ORDER BY d.n DESC)
        """,
        {"task_completions", "sites"},
    ),
    (
        "a CTE named like a synced table reads another one",
        """
        WITH work_orders AS (SELECT id, name FROM optiqoflow.sites WHERE active)
        SELECT * FROM work_orders
        """,
        {"sites"},
    ),
    (
        "a CTE named like a synced table, and that table qualified",
        """
        WITH work_orders AS (SELECT * FROM optiqoflow.work_orders WHERE priority = 'high')
        SELECT w.id, z.name FROM work_orders w JOIN zones z ON z.id = w.zone_id
        """,
        {"work_orders", "zones"},
    ),
    (
        "a CTE shadows only inside its own subquery",
        """
        SELECT * FROM (WITH tasks AS (SELECT 1 AS id) SELECT * FROM tasks) a
        JOIN tasks t ON t.id = a.id
        """,
        {"tasks"},
    ),
    (
        "recursive CTE walking the room hierarchy",
        """
        WITH RECURSIVE tree(id, parent_id, depth) AS (
            SELECT id, parent_id, 0 FROM optiqoflow.rooms WHERE parent_id IS NULL
            UNION ALL
            SELECT r.id, r.parent_id, t.depth + 1
            FROM optiqoflow.rooms r JOIN tree t ON r.parent_id = t.id
        )
        SELECT depth, count(*) FROM tree GROUP BY depth
        """,
        {"rooms"},
    ),
    (
        "recursive CTE named like a synced table refers to itself",
        """
        WITH RECURSIVE zones(id, root) AS (
            SELECT id, id FROM optiqoflow.rooms WHERE parent_id IS NULL
            UNION ALL
            SELECT r.id, z.root FROM optiqoflow.rooms r JOIN zones z ON r.parent_id = z.id
        )
        SELECT root, count(*) FROM zones GROUP BY root
        """,
        {"rooms"},
    ),
    (
        "chained CTEs, the last one named like a table",
        """
        WITH a AS (SELECT employee_id, sum(hours) h FROM optiqoflow.time_entries GROUP BY 1),
             b AS (SELECT employee_id, count(*) n FROM optiqoflow.absences GROUP BY 1),
             employees AS (SELECT a.employee_id, a.h, coalesce(b.n, 0) n
                           FROM a LEFT JOIN b USING (employee_id))
        SELECT * FROM employees ORDER BY h DESC
        """,
        {"time_entries", "absences"},
    ),
    (
        "LEFT JOIN LATERAL aliased like a synced table: latest three audits per site",
        """
        SELECT s.name, feedback.score, feedback.audited_at
        FROM optiqoflow.sites s
        LEFT JOIN LATERAL (
            SELECT a.score, a.audited_at FROM optiqoflow.audits a
            WHERE a.site_id = s.id ORDER BY a.audited_at DESC LIMIT 3
        ) AS feedback ON true
        """,
        {"sites", "audits"},
    ),
    (
        "CROSS JOIN LATERAL over jsonb_array_elements WITH ORDINALITY",
        """
        SELECT ar.audit_id, item->>'question' AS question, (item->>'score')::int AS score, n
        FROM optiqoflow.audit_results ar
        CROSS JOIN LATERAL jsonb_array_elements(ar.answers) WITH ORDINALITY AS x(item, n)
        WHERE ar.answers @> '[{"failed": true}]'::jsonb
        """,
        {"audit_results"},
    ),
    (
        "generate_series calendar left-joined to absences",
        """
        SELECT m.month, count(ab.id) AS absences
        FROM generate_series(date_trunc('month', now()) - interval '11 months',
                             date_trunc('month', now()), interval '1 month') AS m(month)
        LEFT JOIN optiqoflow.absences ab ON date_trunc('month', ab.starts_at) = m.month
        GROUP BY m.month ORDER BY m.month
        """,
        {"absences"},
    ),
    (
        "nested subqueries: IN, EXISTS, scalar, ORDER BY",
        """
        SELECT c.name,
               (SELECT count(*) FROM optiqoflow.feedback f WHERE f.customer_id = c.id) AS fb
        FROM optiqoflow.customers c
        WHERE c.id IN (SELECT s.customer_id FROM optiqoflow.sites s
                       WHERE EXISTS (SELECT 1 FROM optiqoflow.deviations d
                                     WHERE d.site_id = s.id AND d.severity > 2))
        ORDER BY (SELECT max(o.ordered_at) FROM optiqoflow.supply_orders o
                  WHERE o.customer_id = c.id) DESC NULLS LAST
        """,
        {"customers", "feedback", "sites", "deviations", "supply_orders"},
    ),
    (
        "subquery inside an aggregate FILTER",
        """
        SELECT count(*) FILTER (WHERE t.zone_id IN (SELECT id FROM optiqoflow.zones
                                                    WHERE kind = 'wet')) AS wet_tasks
        FROM optiqoflow.tasks t
        """,
        {"tasks", "zones"},
    ),
    (
        "quoted identifiers, upper-case unquoted names fold to lower case",
        """
        SELECT "Team"."name", count(*) AS "Shift Count"
        FROM "optiqoflow"."teams" AS "Team"
        JOIN OPTIQOFLOW.Shifts sh ON sh.team_id = "Team".id
        GROUP BY 1
        """,
        {"teams", "shifts"},
    ),
    (
        "a quoted mixed-case name is another table in PostgreSQL",
        'SELECT * FROM optiqoflow."Work_Orders"',
        set(),
    ),
    (
        "UNION ALL of two sources",
        """
        SELECT 'task' AS kind, completed_at AS at FROM optiqoflow.task_completions
        UNION ALL
        SELECT 'audit', audited_at FROM optiqoflow.audits
        ORDER BY at DESC LIMIT 50
        """,
        {"task_completions", "audits"},
    ),
    (
        "INTERSECT and EXCEPT",
        """
        (SELECT employee_id FROM optiqoflow.attendance_events WHERE day = current_date
         INTERSECT
         SELECT employee_id FROM optiqoflow.shifts WHERE day = current_date)
        EXCEPT
        SELECT employee_id FROM optiqoflow.absences WHERE current_date BETWEEN starts_on AND ends_on
        """,
        {"attendance_events", "shifts", "absences"},
    ),
    (
        "tenant views resolve to their target table",
        f"""
        SELECT z.name, avg(r.value) AS avg_temp
        FROM tenants."{T}_sensor_readings" r
        JOIN tenants."{T}_zones" z ON z.id = r.zone_id
        WHERE r.measured_at > now() - interval '1 day'
        GROUP BY z.name
        """,
        {"sensor_readings", "zones"},
    ),
    (
        "tenant view of a target whose name has underscores",
        f'SELECT count(*) FROM tenants."{T}_scheduled_work_orders"',
        {"scheduled_work_orders"},
    ),
    (
        "not a tenant view: upper-case uuid, no uuid, another schema",
        f"""
        SELECT * FROM tenants."{T.upper()}_zones", tenants.zones,
                      public."{T}_zones", tenants."{T}_webhook_logs"
        """,
        set(),
    ),
    (
        "unqualified synced names count; other schemas do not",
        """
        SELECT * FROM floors f JOIN public.rooms r ON r.floor_id = f.id
        JOIN analytics.sites s ON true JOIN optiqoflow.table_mappings m ON true
        """,
        {"floors"},
    ),
    (
        "DISTINCT ON, percentile WITHIN GROUP, GROUPING SETS",
        """
        SELECT DISTINCT ON (team_id) team_id, employee_id,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY minutes) AS median
        FROM optiqoflow.time_entries
        GROUP BY GROUPING SETS ((team_id, employee_id), (team_id))
        ORDER BY team_id, median DESC
        """,
        {"time_entries"},
    ),
    (
        "json functions and a VALUES list",
        """
        SELECT v.label, jsonb_build_object('n', count(f.id), 'avg', avg(f.rating)),
               jsonb_agg(f.comment ORDER BY f.created_at) FILTER (WHERE f.comment IS NOT NULL)
        FROM (VALUES (1, 'bad'), (5, 'great')) AS v(rating, label)
        LEFT JOIN optiqoflow.feedback f ON f.rating = v.rating
        CROSS JOIN LATERAL json_to_record(f.meta::json) AS m(channel text)
        GROUP BY v.label
        """,
        {"feedback"},
    ),
    (
        "a dashboard parameter placeholder",
        "SELECT * FROM optiqoflow.work_orders WHERE site_id = $1 AND created_at > $2",
        {"work_orders"},
    ),
    (
        "reads nothing synced",
        "SELECT now() AS server_time, version(), generate_series(1, 3) AS n",
        set(),
    ),
]


@pytest.mark.parametrize(("sql", "expected"), [r[1:] for r in READS], ids=[r[0] for r in READS])
def test_tables_read(sql: str, expected: set[str]) -> None:
    assert tables_read(sql, SYNCED) == expected


def test_only_synced_targets_count() -> None:
    assert tables_read("SELECT * FROM optiqoflow.work_orders", {"sites"}) == set()


UNUSABLE: list[tuple[str, str]] = [
    ("SELEC * FROM optiqoflow.work_orders", "does not parse"),
    ("SELECT * FROM optiqoflow.work_orders WHERE (status = 'open'", "does not parse"),
    ("SELECT 'unterminated FROM optiqoflow.zones", "does not parse"),
    ("", "empty query"),
    ("  -- nothing here\n", "empty query"),
    ("SELECT 1; SELECT * FROM optiqoflow.zones", "2 statements"),
    ("VACUUM optiqoflow.zones", "not a query"),
    ("WITH d AS (DELETE FROM optiqoflow.tasks RETURNING *) SELECT * FROM d", "must not write"),
]


@pytest.mark.parametrize(("sql", "message"), UNUSABLE)
def test_unusable_sql_raises(sql: str, message: str) -> None:
    with pytest.raises(ChartSQLError, match=message):
        tables_read(sql, SYNCED)


# --- against the database ------------------------------------------------------------


def add_chart(conn: psycopg.Connection[Any], query: str, title: str = "chart") -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO public.charts (tenant_id, title, query) VALUES (%s, %s, %s) RETURNING id",
        (T, title, query),
    ).fetchone()
    assert row is not None
    chart_id: uuid.UUID = row[0]
    return chart_id


def deps(conn: psycopg.Connection[Any]) -> dict[uuid.UUID, set[str]]:
    out: dict[uuid.UUID, set[str]] = {}
    for chart_id, table in conn.execute(
        "SELECT chart_id, table_name FROM public.chart_table_dependencies"
    ):
        out.setdefault(chart_id, set()).add(table)
    return out


def test_sync_writes_dependencies(conn: psycopg.Connection[Any]) -> None:
    a = add_chart(conn, "SELECT * FROM optiqoflow.work_orders JOIN zones USING (zone_id)")
    b = add_chart(conn, f'SELECT count(*) FROM tenants."{T}_feedback"')
    none = add_chart(conn, "SELECT 1")

    report = sync_dependencies(conn, strict=False)

    assert deps(conn) == {a: {"work_orders", "zones"}, b: {"feedback"}}
    assert (report.added, report.removed) == (3, 0)
    assert [c.chart_id for c in report.problems] == [none]
    assert report.problems[0].problem == "reads no synced table"
    assert not report.failed
    assert sync_dependencies(conn, strict=True).failed


def test_sync_follows_a_changed_query_and_keeps_unchanged_rows(
    conn: psycopg.Connection[Any],
) -> None:
    a = add_chart(conn, "SELECT * FROM optiqoflow.sites JOIN optiqoflow.rooms USING (site_id)")
    sync_dependencies(conn)
    xmin = "SELECT xmin::text FROM public.chart_table_dependencies WHERE table_name = 'sites'"
    before = conn.execute(xmin).fetchone()

    conn.execute(
        "UPDATE public.charts SET query = %s WHERE id = %s",
        ("WITH rooms AS (SELECT * FROM optiqoflow.floors) SELECT * FROM sites, rooms", a),
    )
    report = sync_dependencies(conn)

    assert deps(conn) == {a: {"sites", "floors"}}
    assert (report.added, report.removed) == (1, 1)
    assert conn.execute(xmin).fetchone() == before  # the unchanged row was not rewritten
    again = sync_dependencies(conn)
    assert (again.added, again.removed) == (0, 0)


def test_unparsable_chart_keeps_its_previous_rows(conn: psycopg.Connection[Any]) -> None:
    a = add_chart(conn, "SELECT * FROM optiqoflow.tasks")
    sync_dependencies(conn)
    conn.execute(
        "UPDATE public.charts SET query = 'SELECT * FROM optiqoflow.tasks WHERE (' WHERE id = %s",
        (a,),
    )

    report = sync_dependencies(conn)

    assert deps(conn) == {a: {"tasks"}}
    [chart] = report.charts
    assert chart.error is not None and chart.error.startswith("does not parse")
    assert chart.tables == {"tasks"}


def test_a_new_mapping_becomes_a_synced_table(conn: psycopg.Connection[Any]) -> None:
    a = add_chart(conn, "SELECT * FROM optiqoflow.equipment")
    sync_dependencies(conn)
    assert deps(conn) == {}
    conn.execute(
        "INSERT INTO optiqoflow.table_mappings (source_table, target_table)"
        " VALUES ('site_equipment', 'equipment')"
    )
    sync_dependencies(conn)
    assert deps(conn) == {a: {"equipment"}}


def test_cli_strict_exit_code_and_json(
    conn: psycopg.Connection[Any],
    db_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    good = add_chart(conn, "SELECT * FROM optiqoflow.shifts", title="Shifts")
    assert cli.main(["charts", "deps", "--strict"]) == 0
    assert deps(conn) == {good: {"shifts"}}

    bad = add_chart(conn, "SELECT * FROM", title="Broken")
    assert cli.main(["charts", "deps"]) == 0
    capsys.readouterr()
    assert cli.main(["charts", "deps", "--strict", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    by_id = {c["id"]: c for c in report["charts"]}
    assert by_id[str(good)]["tables"] == ["shifts"]
    assert by_id[str(bad)]["error"].startswith("does not parse")
    assert report["problems"] == 1


def test_cli_without_database_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # no DATABASE_URL and no embedded PostgreSQL in the data folder either
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("OPTIQOFLOW_DATA_DIR", str(tmp_path))
    assert cli.main(["charts", "deps"]) == 2
    assert "DATABASE_URL is not set" in capsys.readouterr().err
