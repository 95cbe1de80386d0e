"""The simulated Optiqo platform: a real PostgreSQL holding the 21 source tables, a
seeded workload of inserts, updates, deletes and FULL_SYNC runs, and an outbox.

Every change is captured in the source's own transaction by an AFTER trigger that
writes a Supabase-style payload ({type, table, schema, record, old_record, tenant_id,
event_id, occurred_at}) to `optiqo.outbox`; FULL_SYNC batches are written there too.
`simulator.simulate` then signs and POSTs the outbox; `simulator.converge` compares the
source with the destination.

Tenants have their own subset of Optiqo's optional modules: the columns marked
"optional (X module)" in the schema are left NULL by a tenant without module X and are
stripped from its payloads, so tenants push different columns.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

MODULES = ("billing", "location", "quality", "feedback", "photo")

# Columns Optiqo "adds over time without telling anyone" (schema evolution mid-run).
EVOLVED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("sensor_readings", "humidity_pct", "numeric(5,2)"),
    ("adhoc_work_orders", "external_ref", "text"),
)

# *_id columns that name a row of another source table (values are picked from it)
REFERENCES = {
    "site_id": "customer_sites",
    "zone_id": "zone_categories",
    "customer_id": "customer_accounts",
    "floor_id": "site_floors",
    "room_id": "site_rooms",
    "task_id": "cleaning_tasks",
    "employee_id": "staff_members",
    "assignee_id": "staff_members",
    "auditor_id": "staff_members",
    "ordered_by": "staff_members",
    "supervisor_id": "staff_members",
    "team_id": "staff_teams",
    "audit_id": "quality_audits",
    "work_order_id": "adhoc_work_orders",
}

# how often each table changes (sensor readings are the high-volume one)
TABLE_WEIGHTS = {
    "sensor_readings": 20,
    "attendance_events": 8,
    "task_completions": 8,
    "time_entries": 6,
    "adhoc_work_orders": 6,
    "shift_assignments": 5,
    "quality_audit_results": 4,
    "customer_feedback": 4,
    "deviation_reports": 3,
    "supply_orders": 3,
    "quality_audits": 3,
    "cleaning_tasks": 3,
    "site_rooms": 3,
    "staff_members": 2,
    "absence_records": 2,
    "recurring_work_orders": 2,
    "customer_sites": 2,
    "site_floors": 2,
    "zone_categories": 1,
    "customer_accounts": 1,
    "staff_teams": 1,
}

SUPPORT_SQL = """
CREATE TABLE optiqo.sim_run (
    run_id     text PRIMARY KEY,
    seed       bigint NOT NULL,
    params     jsonb NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
);
-- the optional modules each tenant has switched on
CREATE TABLE optiqo.tenant_modules (
    tenant_id uuid PRIMARY KEY,
    modules   text[] NOT NULL
);
-- "optional (X module)" columns of the schema
CREATE TABLE optiqo.optional_columns (
    table_name  text NOT NULL,
    column_name text NOT NULL,
    module      text NOT NULL,
    PRIMARY KEY (table_name, column_name)
);
-- what the sender sends, in commit order
CREATE TABLE optiqo.outbox (
    id      bigserial PRIMARY KEY,
    payload jsonb NOT NULL
);
-- the FULL_SYNC runs the workload made (the sender needs their first batch)
CREATE TABLE optiqo.full_sync_runs (
    id              bigserial PRIMARY KEY,
    tenant_id       uuid NOT NULL,
    table_name      text NOT NULL,
    kind            text NOT NULL,   -- total | total_no_sync_id | no_total | abandoned
    sync_id         text,
    total           bigint,
    batches         integer NOT NULL,
    batches_sent    integer NOT NULL DEFAULT 0,
    first_outbox_id bigint,
    snapshot_at     timestamptz NOT NULL
);
-- the sender's log: one row per HTTP attempt
CREATE TABLE optiqo.deliveries (
    id          bigserial PRIMARY KEY,
    outbox_id   bigint NOT NULL,
    delivery_id text NOT NULL,
    attempt     integer NOT NULL,
    http_status integer,            -- NULL: no answer (timeout, connection refused)
    answer      jsonb,
    error       text,
    sent_at     timestamptz NOT NULL,
    seconds     double precision NOT NULL
);
CREATE INDEX deliveries_outbox ON optiqo.deliveries (outbox_id);

-- A row as the tenant pushes it: without the optional columns of modules it lacks.
CREATE FUNCTION optiqo._pushed(p_table text, p_row jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT p_row - coalesce(
        (SELECT array_agg(o.column_name) FROM optiqo.optional_columns o
          WHERE o.table_name = p_table
            AND NOT EXISTS (SELECT FROM optiqo.tenant_modules m
                             WHERE m.tenant_id = (p_row ->> 'tenant_id')::uuid
                               AND o.module = ANY (m.modules))),
        '{}'::text[])
$$;

-- Supabase database-webhook payload of a change, written in the change's transaction.
CREATE FUNCTION optiqo._capture() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_id     bigint := nextval('optiqo.outbox_id_seq');
    v_new    jsonb;
    v_old    jsonb;
BEGIN
    IF TG_OP <> 'DELETE' THEN
        v_new := optiqo._pushed(TG_TABLE_NAME, to_jsonb(NEW));
    END IF;
    IF TG_OP <> 'INSERT' THEN
        v_old := optiqo._pushed(TG_TABLE_NAME, to_jsonb(OLD));
    END IF;
    INSERT INTO optiqo.outbox (id, payload)
    VALUES (v_id, jsonb_build_object(
        'type', TG_OP,
        'table', TG_TABLE_NAME,
        'schema', TG_TABLE_SCHEMA,
        'record', v_new,
        'old_record', v_old,
        'tenant_id', coalesce(v_new, v_old) -> 'tenant_id',
        'event_id', (SELECT r.run_id FROM optiqo.sim_run r) || ':' || v_id,
        'occurred_at', coalesce(nullif(current_setting('optiqo.sim_now', true), '')::timestamptz,
                                now())));
    RETURN NULL;
END
$$;
"""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as written in the schema: uuid, text, numeric(12,2), text[] ...
    not_null: bool
    comment: str
    module: str | None  # the optional module that owns it, or None


@dataclass(frozen=True)
class Table:
    name: str
    target: str
    columns: tuple[Column, ...]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def schema_sql() -> str:
    """The Optiqo source schema shipped with the package (simulator/optiqo_source_schema.sql)."""
    return resources.files("simulator").joinpath("optiqo_source_schema.sql").read_text("utf-8")


_TABLE_RE = re.compile(r"-- target: (\w+)[^\n]*\nCREATE TABLE optiqo\.(\w+) \((.*?)\n\);", re.S)
_COLUMN_RE = re.compile(r"^\s+(\w+)\s+(.+?)(?:,)?\s*(?:--\s*(.*))?$")


def parse_schema(text: str | None = None) -> dict[str, Table]:
    """The 21 source tables, their target names and columns, read from the schema file
    (its comments give the optional modules, enumerations and ranges)."""
    tables: dict[str, Table] = {}
    for target, name, body in _TABLE_RE.findall(text if text is not None else schema_sql()):
        columns = []
        for line in body.splitlines():
            m = _COLUMN_RE.match(line)
            if not m:
                continue
            col, decl, comment = m.group(1), m.group(2).rstrip(","), (m.group(3) or "").strip()
            not_null = "NOT NULL" in decl or "PRIMARY KEY" in decl
            ctype = decl.replace("PRIMARY KEY", "").replace("NOT NULL", "").strip()
            module = re.search(r"optional \((\w+) module\)", comment)
            columns.append(
                Column(col, ctype, not_null, comment, module.group(1) if module else None)
            )
        tables[name] = Table(name, target, tuple(columns))
    return tables


def create_source(
    conn: psycopg.Connection[Any], run_id: str, seed: int, params: dict[str, Any]
) -> None:
    """(Re)create schema `optiqo`: the 21 tables, the outbox and its triggers."""
    tables = parse_schema()
    with conn.transaction():
        conn.execute("DROP SCHEMA IF EXISTS optiqo CASCADE")
        conn.execute(schema_sql().encode())
        conn.execute(SUPPORT_SQL.encode())
        conn.execute(
            "INSERT INTO optiqo.sim_run (run_id, seed, params) VALUES (%s, %s, %s)",
            (run_id, seed, Jsonb(params)),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO optiqo.optional_columns VALUES (%s, %s, %s)",
                [
                    (t.name, c.name, c.module)
                    for t in tables.values()
                    for c in t.columns
                    if c.module
                ],
            )
        for t in tables.values():
            conn.execute(
                sql.SQL(
                    "CREATE TRIGGER capture AFTER INSERT OR UPDATE OR DELETE ON optiqo.{} "
                    "FOR EACH ROW EXECUTE FUNCTION optiqo._capture()"
                ).format(sql.Identifier(t.name))
            )


# --- values ----------------------------------------------------------------------------

FIRST = (
    "Aino",
    "Eero",
    "Helmi",
    "Juha",
    "Kaisa",
    "Lauri",
    "Mika",
    "Noora",
    "Oskari",
    "Päivi",
    "Sanna",
    "Tuomas",
    "Ville",
    "Åsa",
    "Ümit",
    "Zoë",
    "O'Brien",
    "Jean-Luc",
)
LAST = (
    "Virtanen",
    "Korhonen",
    "Mäkinen",
    "Nieminen",
    "Hämäläinen",
    "Laine",
    "Heikkinen",
    "Koskinen",
    "Järvinen",
    "Lehtonen",
    "Saarinen",
    "Niemelä",
    "Öberg",
)
CITIES = (
    "Helsinki",
    "Espoo",
    "Tampere",
    "Vantaa",
    "Oulu",
    "Turku",
    "Jyväskylä",
    "Lahti",
    "Kuopio",
    "Pori",
    "Tallinn",
    "Stockholm",
)
WORDS = (
    "lattia",
    "ikkuna",
    "WC",
    "keittiö",
    "aula",
    "porras",
    "hissi",
    "toimisto",
    "varasto",
    "neuvotteluhuone",
    "käytävä",
    "sauna",
    "piha",
    "roska-astia",
    "pinnat",
    "desinfiointi",
)
PHRASES = (
    "Vuotava hana \u2013 tarkista tiiviste",
    'Lasiovi rikki; "varo sirpaleita"',
    "Paper towels empty\nrefill both dispensers",
    "Kahvinkeitin 🙂 puhdistettu",
    "Floor wet after 14:00 \\ sign placed",
    "Ovi jumissa, avain 'B-12'",
    "Tilaaja pyysi lisäsiivousta ⟨kiireellinen⟩",
)
ROOM_TYPES = ("office", "toilet", "kitchen", "corridor", "meeting_room", "storage", "lobby")


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


@dataclass
class Workload:
    """Seeded generator of source changes; keeps the live ids of every tenant x table."""

    rng: random.Random
    tables: dict[str, Table]
    tenants: list[uuid.UUID]
    modules: dict[uuid.UUID, frozenset[str]]
    clock: datetime
    live: dict[tuple[uuid.UUID, str], list[uuid.UUID]] = field(default_factory=dict)
    where: dict[tuple[uuid.UUID, str, uuid.UUID], int] = field(default_factory=dict)
    evolved: set[tuple[str, str]] = field(default_factory=set)

    def tick(self) -> datetime:
        self.clock += timedelta(
            milliseconds=self.rng.randint(1, 1500), microseconds=self.rng.randint(0, 999)
        )
        return self.clock

    # live-id bookkeeping (O(1) add/remove/pick)
    def add(self, tenant: uuid.UUID, table: str, rid: uuid.UUID) -> None:
        ids = self.live.setdefault((tenant, table), [])
        self.where[(tenant, table, rid)] = len(ids)
        ids.append(rid)

    def remove(self, tenant: uuid.UUID, table: str, rid: uuid.UUID) -> None:
        ids = self.live[(tenant, table)]
        i = self.where.pop((tenant, table, rid))
        last = ids.pop()
        if last != rid:
            ids[i] = last
            self.where[(tenant, table, last)] = i

    def pick(self, tenant: uuid.UUID, table: str) -> uuid.UUID | None:
        ids = self.live.get((tenant, table))
        return self.rng.choice(ids) if ids else None

    def count(self, tenant: uuid.UUID, table: str) -> int:
        return len(self.live.get((tenant, table), ()))

    # values
    def value(self, tenant: uuid.UUID, table: Table, col: Column, now: datetime) -> Any:
        rng = self.rng
        if col.module and col.module not in self.modules[tenant]:
            return None
        if not col.not_null and col.name not in ("updated_at",) and rng.random() < 0.12:
            return None
        name, ctype = col.name, col.type
        if ctype == "uuid":
            ref = REFERENCES.get(name)
            if ref:
                picked = self.pick(tenant, ref)
                if picked is not None and rng.random() < 0.9:
                    return picked
            return _uuid(rng)
        if ctype == "text":
            choices = re.fullmatch(r"\s*([a-z0-9_]+(?:\s*\|\s*[a-z0-9_]+)+)\s*", col.comment)
            if choices:
                return rng.choice([c.strip() for c in choices.group(1).split("|")])
            return self._text(name, table.name)
        if ctype in ("smallint", "integer"):
            bounds = re.search(r"(\d+)\D{0,12}\.\.\s*(\d+)", col.comment)
            if bounds:
                return rng.randint(int(bounds.group(1)), int(bounds.group(2)))
            if name == "battery_pct":
                return rng.randint(0, 100)
            if name == "level":
                return rng.randint(-2, 12)
            if name.endswith("minutes") or name == "minutes":
                return rng.randint(5, 480)
            if name == "visitor_count":
                return rng.randint(0, 2500)
            return rng.randint(0, 20) if ctype == "integer" else rng.randint(1, 5)
        m = re.fullmatch(r"numeric\((\d+),(\d+)\)", ctype)
        if m:
            precision, scale = int(m.group(1)), int(m.group(2))
            top = (
                100
                if name.endswith("pct") or name == "score"
                else min(10 ** (precision - scale) - 1, 250_000)
            )
            if name == "cleaning_frequency_per_week":
                top = 14
            units = rng.randint(0, top * 10**scale)
            return Decimal(units).scaleb(-scale)
        if ctype == "double precision":
            if name == "latitude":
                return round(rng.uniform(59.8, 69.9), rng.choice((4, 6, 12)))
            return round(rng.uniform(19.5, 31.5), rng.choice((4, 6, 12)))
        if ctype == "boolean":
            return rng.random() < 0.7
        if ctype == "date":
            return (now + timedelta(days=rng.randint(-400, 400))).date()
        if ctype == "timestamptz":
            return now + timedelta(
                seconds=rng.randint(-30 * 86400, 30 * 86400), microseconds=rng.randint(0, 999_999)
            )
        if ctype == "text[]":
            if name == "photo_urls":
                return [
                    f"https://cdn.optiqo.example/p/{_uuid(rng).hex[:12]}.jpg"
                    for _ in range(rng.randint(0, 3))
                ]
            return rng.sample(list(WORDS), rng.randint(0, 4))
        if ctype == "smallint[]":
            return sorted(rng.sample(range(1, 8), rng.randint(1, 5)))
        if ctype == "jsonb":
            if name == "items":
                return [
                    {
                        "sku": f"SKU-{rng.randint(100, 999)}",
                        "qty": rng.randint(1, 12),
                        "unit_price_eur": rng.choice((4.5, 12.25, 0.99, 18, 3.333)),
                    }
                    for _ in range(rng.randint(1, 4))
                ]
            return {
                "source": rng.choice(("app", "portal", "api")),
                "checklist": rng.sample(list(WORDS), 2),
                "nested": {"floor": rng.randint(0, 9), "ok": rng.random() < 0.5, "note": None},
            }
        raise ValueError(f"no generator for {table.name}.{name} {ctype}")

    def _text(self, name: str, table: str) -> str:
        rng = self.rng
        if name == "first_name":
            return rng.choice(FIRST)
        if name == "last_name":
            return rng.choice(LAST)
        if name in ("requested_by", "reported_by"):
            return f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        if name == "email" or name == "contact_email":
            return f"{rng.choice(FIRST).lower()}.{rng.randint(1, 999)}@example.fi"
        if name in ("phone", "contact_phone"):
            return f"+358 40 {rng.randint(1000000, 9999999)}"
        if name == "city":
            return rng.choice(CITIES)
        if name == "postal_code":
            return f"{rng.randint(0, 99999):05d}"
        if name == "country_code":
            return rng.choice(("FI", "SE", "EE", "NO"))
        if name == "timezone":
            return rng.choice(("Europe/Helsinki", "Europe/Stockholm", "Europe/Tallinn"))
        if name == "street_address":
            return f"{rng.choice(WORDS).capitalize()}katu {rng.randint(1, 120)} {rng.choice('ABC')}"
        if name == "business_id":
            return f"{rng.randint(1000000, 9999999)}-{rng.randint(0, 9)}"
        if name == "code":
            return f"Z-{rng.randint(1, 99):02d}"
        if name == "color":
            return f"#{rng.randint(0, 0xFFFFFF):06x}"
        if name == "rrule":
            return rng.choice(
                ("FREQ=WEEKLY;BYDAY=MO,WE,FR", "FREQ=DAILY", "FREQ=MONTHLY;BYMONTHDAY=1")
            )
        if name == "sensor_id":
            return f"sensor-{rng.randint(1, 80):03d}"
        if name == "room_type":
            return rng.choice(ROOM_TYPES)
        if name == "room_number":
            return f"{rng.randint(0, 9)}{rng.randint(0, 40):02d}"
        if name == "qr_code":
            return f"QR{rng.getrandbits(40):010x}"
        if name in ("description", "instructions", "comment", "note"):
            return rng.choice(PHRASES) + f" #{rng.randint(1, 9999)}"
        if name == "external_ref":
            return f"EXT-{rng.randint(1, 10**6)}"
        return f"{rng.choice(WORDS).capitalize()} {rng.randint(1, 500)}"

    def new_row(self, tenant: uuid.UUID, table: Table, now: datetime) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for col in table.columns:
            if col.name == "id":
                row["id"] = _uuid(self.rng)
            elif col.name == "tenant_id":
                row["tenant_id"] = tenant
            elif col.name == "created_at":
                row["created_at"] = now
            elif col.name == "updated_at":
                row["updated_at"] = now
            else:
                row[col.name] = self.value(tenant, table, col, now)
        for tname, cname, _ in EVOLVED_COLUMNS:
            if tname == table.name and (tname, cname) in self.evolved:
                row[cname] = self._evolved_value(cname)
        return row

    def _evolved_value(self, cname: str) -> Any:
        if self.rng.random() < 0.3:
            return None
        if cname == "humidity_pct":
            return Decimal(self.rng.randint(0, 10000)).scaleb(-2)
        return self._text(cname, "")

    def changed_columns(self, tenant: uuid.UUID, table: Table, now: datetime) -> dict[str, Any]:
        candidates = [
            c
            for c in table.columns
            if c.name not in ("id", "tenant_id", "created_at", "updated_at")
        ]
        changes = {
            c.name: self.value(tenant, table, c, now)
            for c in self.rng.sample(candidates, min(len(candidates), self.rng.randint(1, 3)))
        }
        for tname, cname, _ in EVOLVED_COLUMNS:
            if tname == table.name and (tname, cname) in self.evolved and self.rng.random() < 0.5:
                changes[cname] = self._evolved_value(cname)
        changes["updated_at"] = now
        return changes


def adapt(column_type: str, value: Any) -> Any:
    """A Python value as psycopg should send it for a column of that type."""
    if column_type == "jsonb" and value is not None:
        return Jsonb(value)
    return value


def insert_sql(table: str, columns: list[str]) -> sql.Composed:
    return sql.SQL("INSERT INTO optiqo.{} ({}) VALUES ({})").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )


def update_sql(table: str, columns: list[str]) -> sql.Composed:
    return sql.SQL("UPDATE optiqo.{} SET {} WHERE tenant_id = %s AND id = %s").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in columns),
    )


def delete_sql(table: str) -> sql.Composed:
    return sql.SQL("DELETE FROM optiqo.{} WHERE tenant_id = %s AND id = %s").format(
        sql.Identifier(table)
    )


EPOCH = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


# --- the workload ----------------------------------------------------------------------

RUN_KINDS = ("total", "no_total", "total_no_sync_id", "total")


@dataclass
class WorkloadOptions:
    run_id: str
    tenants: int = 3
    events: int = 300
    seed: int = 1
    batch_size: int = 50
    full_syncs: int = 2
    abandoned: int = 1
    evolve: bool = True
    interleave: bool = True  # spread a run's batches over the changes that follow it


@dataclass
class WorkloadStats:
    changes: int = 0
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    transactions: int = 0
    full_sync_runs: int = 0
    full_sync_batches: int = 0
    seconds: float = 0.0


def tenant_ids(run_id: str, n: int) -> list[uuid.UUID]:
    import hashlib

    return [
        uuid.UUID(bytes=hashlib.sha256(f"{run_id}/tenant/{i}".encode()).digest()[:16], version=4)
        for i in range(n)
    ]


@dataclass
class _PendingBatch:
    due: int  # write it before change number `due`
    run_pk: int
    table: str
    tenant: uuid.UUID
    offset: int
    records: str  # jsonb text
    total: int | None
    sync_id: str | None
    occurred_at: datetime


def run_workload(conn: psycopg.Connection[Any], opts: WorkloadOptions) -> WorkloadStats:
    """Apply the seeded workload to the source (schema already created): every change and
    every FULL_SYNC batch lands in optiqo.outbox in commit order."""
    import time

    started = time.perf_counter()
    rng = random.Random(opts.seed)
    tables = parse_schema()
    tenants = tenant_ids(opts.run_id, opts.tenants)
    modules = {t: frozenset(m for m in MODULES if rng.random() < 0.5) for t in tenants}
    if len(tenants) >= 2:  # at least one tenant with everything, one with nothing
        modules[tenants[0]] = frozenset(MODULES)
        modules[tenants[1]] = frozenset()
    wl = Workload(rng, tables, tenants, modules, EPOCH)
    stats = WorkloadStats()
    conn.execute("SET synchronous_commit = off")
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO optiqo.tenant_modules VALUES (%s, %s)",
            [(t, sorted(modules[t])) for t in tenants],
        )

    names = list(TABLE_WEIGHTS)
    weights = [TABLE_WEIGHTS[n] for n in names]
    tenant_weights = [1 + (i % 4) for i in range(len(tenants))]
    lo, hi = int(opts.events * 0.25), int(opts.events * 0.9)
    n_runs = opts.full_syncs + opts.abandoned
    run_at: dict[int, str] = {}
    kinds = [RUN_KINDS[i % len(RUN_KINDS)] for i in range(opts.full_syncs)] + [
        "abandoned"
    ] * opts.abandoned
    rng.shuffle(kinds)
    for i, kind in enumerate(kinds):
        at = lo + (hi - lo) * (i + 1) // (n_runs + 1)
        while at in run_at:
            at += 1
        run_at[at] = kind
    evolve_at = opts.events // 2 if opts.evolve else -1
    pending: list[_PendingBatch] = []

    change = 0
    while change < opts.events:
        with conn.transaction():
            for _ in range(rng.choice((1, 1, 1, 1, 2, 3))):
                if change >= opts.events:
                    break
                for p in [p for p in pending if p.due <= change]:
                    _write_batch(conn, p, opts.run_id)
                    pending.remove(p)
                    stats.full_sync_batches += 1
                if change == evolve_at:
                    for tname, cname, ctype in EVOLVED_COLUMNS:
                        conn.execute(
                            sql.SQL("ALTER TABLE optiqo.{} ADD COLUMN {} {}").format(
                                sql.Identifier(tname), sql.Identifier(cname), sql.SQL(ctype)
                            )
                        )
                        wl.evolved.add((tname, cname))
                run_kind = run_at.get(change)
                if run_kind is not None:
                    busy = {(p.tenant, p.table) for p in pending}
                    started_run, rest = _start_run(conn, wl, opts, run_kind, change, busy)
                    stats.full_sync_runs += started_run
                    stats.full_sync_batches += started_run
                    pending.extend(rest)
                tenant = rng.choices(tenants, tenant_weights)[0]
                table = tables[rng.choices(names, weights)[0]]
                _change(conn, wl, tenant, table, stats)
                change += 1
            stats.transactions += 1
    for p in pending:  # batches still due after the last change
        with conn.transaction():
            _write_batch(conn, p, opts.run_id)
        stats.full_sync_batches += 1
    stats.seconds = time.perf_counter() - started
    return stats


def _change(
    conn: psycopg.Connection[Any],
    wl: Workload,
    tenant: uuid.UUID,
    table: Table,
    stats: WorkloadStats,
) -> None:
    rng = wl.rng
    now = wl.tick()
    n = wl.count(tenant, table.name)
    r = rng.random()
    insert_share = 0.75 if table.name == "sensor_readings" else 0.45
    if n == 0 or r < insert_share or (n < 3 and r < 0.8):
        row = wl.new_row(tenant, table, now)
        types = {c.name: c.type for c in table.columns} | {
            c: t for tn, c, t in EVOLVED_COLUMNS if tn == table.name
        }
        conn.execute(
            insert_sql(table.name, list(row)), [adapt(types[k], v) for k, v in row.items()]
        )
        wl.add(tenant, table.name, row["id"])
        stats.inserts += 1
    elif r < insert_share + (1 - insert_share) * 0.72:
        rid = wl.pick(tenant, table.name)
        changes = wl.changed_columns(tenant, table, now)
        types = {c.name: c.type for c in table.columns} | {
            c: t for tn, c, t in EVOLVED_COLUMNS if tn == table.name
        }
        conn.execute(
            update_sql(table.name, list(changes)),
            [*(adapt(types[k], v) for k, v in changes.items()), tenant, rid],
        )
        stats.updates += 1
    else:
        rid = wl.pick(tenant, table.name)
        assert rid is not None
        conn.execute(delete_sql(table.name), (tenant, rid))
        wl.remove(tenant, table.name, rid)
        stats.deletes += 1
    stats.changes += 1


def _start_run(
    conn: psycopg.Connection[Any],
    wl: Workload,
    opts: WorkloadOptions,
    kind: str,
    change: int,
    busy: set[tuple[uuid.UUID, str]],
) -> tuple[int, list[_PendingBatch]]:
    """Snapshot one tenant x table, write its first batch now and schedule the others
    (an abandoned run: only its first half). Returns the batches still to write."""
    rng = wl.rng
    # never two runs of one tenant x table at once: starting one abandons the other
    pairs = sorted(
        (
            (n, t, tab)
            for (t, tab), ids in wl.live.items()
            if (n := len(ids)) >= 2 and (t, tab) not in busy
        ),
        key=lambda x: (wl.tenants.index(x[1]), x[2]),  # by position: same seed, same plan,
    )
    if not pairs:
        return 0, []
    _, tenant, table = rng.choices(pairs, [min(n, 200) for n, _, _ in pairs])[0]
    count = wl.count(tenant, table)
    size = max(
        1, min(opts.batch_size, (count + 1) // 2 if kind == "abandoned" else opts.batch_size)
    )
    if kind == "abandoned" and count < 2:
        return 0, []
    rows = conn.execute(
        sql.SQL(
            "WITH r AS (SELECT optiqo._pushed(%s, to_jsonb(x)) AS r, "
            "                  row_number() OVER (ORDER BY x.id) - 1 AS n "
            "             FROM optiqo.{} x WHERE x.tenant_id = %s) "
            "SELECT (n / %s) * %s AS off, jsonb_agg(r ORDER BY n)::text FROM r GROUP BY 1 ORDER BY 1"
        ).format(sql.Identifier(table)),
        (table, tenant, size, size),
    ).fetchall()
    total = count if kind in ("total", "total_no_sync_id", "abandoned") else None
    sync_id = f"{opts.run_id}/{table}/{change}" if kind in ("total", "abandoned") else None
    batches = [(int(off), str(recs)) for off, recs in rows]
    if kind != "no_total":
        rng.shuffle(batches)  # a run with a total may arrive in any order
    if kind == "abandoned":
        batches = batches[: max(1, len(batches) // 2)]
    snapshot_at = wl.clock
    run_pk = conn.execute(
        "INSERT INTO optiqo.full_sync_runs (tenant_id, table_name, kind, sync_id, total, batches, snapshot_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (tenant, table, kind, sync_id, total, len(rows), snapshot_at),
    ).fetchone()[0]  # type: ignore[index]
    out = []
    due = change
    for i, (off, recs) in enumerate(batches):
        if i > 0:
            due += rng.randint(1, 8) if opts.interleave else 0
        out.append(
            _PendingBatch(due, run_pk, table, tenant, off, recs, total, sync_id, snapshot_at)
        )
    _write_batch(conn, out[0], opts.run_id)
    return 1, out[1:]


def _write_batch(conn: psycopg.Connection[Any], p: _PendingBatch, run_id: str) -> None:
    row = conn.execute(
        "INSERT INTO optiqo.outbox (id, payload) "
        "SELECT s.n, jsonb_build_object('type', 'FULL_SYNC', 'table', %s::text, 'schema', 'optiqo', "
        "       'tenant_id', %s::uuid, 'records', %s::jsonb, 'offset', %s::bigint, "
        "       'event_id', %s || ':' || s.n, 'occurred_at', %s::timestamptz) "
        "       || CASE WHEN %s::bigint IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('total', %s::bigint) END "
        "       || CASE WHEN %s::text IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('sync_id', %s::text) END "
        "  FROM (SELECT nextval('optiqo.outbox_id_seq') AS n) s RETURNING id",
        (
            p.table,
            p.tenant,
            p.records,
            p.offset,
            run_id,
            p.occurred_at,
            p.total,
            p.total,
            p.sync_id,
            p.sync_id,
        ),
    ).fetchone()
    assert row is not None
    conn.execute(
        "UPDATE optiqo.full_sync_runs SET batches_sent = batches_sent + 1, "
        "first_outbox_id = coalesce(first_outbox_id, %s) WHERE id = %s",
        (row[0], p.run_pk),
    )
