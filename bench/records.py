"""Realistic rows of Optiqo's source tables, as the sender puts them in a payload.

Deterministic (seeded), unique ids, versions (`updated_at`) that only move forward.
Every generator returns a dict with exactly the columns of the source table
(`simulator/optiqo_source_schema.sql`), `tenant_id` included as Optiqo sends it.
`copy_line` turns such a dict into a line of PostgreSQL's COPY text format, so the COPY
baseline loads exactly the same values.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

Record = dict[str, Any]
Generator = Callable[[random.Random, str, datetime], Record]

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)

_WORDS = ["lobby", "floor", "window", "toilet", "kitchen", "stairwell", "carpet", "glass", "entrance", "meeting", "room", "corridor", "elevator", "desk", "spill", "bin", "refill", "soap", "towel", "deep", "clean", "polish", "vacuum", "mop", "dust", "sanitise", "inspection", "urgent", "weekly", "monthly", "north", "south", "east", "west", "wing"]
_FIRST = ["Anna", "Bo", "Carla", "Dmitri", "Eva", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kaisa", "Lars", "Mia", "Nils", "Olga", "Pekka"]
_LAST = ["Andersson", "Berg", "Castro", "Dahl", "Ek", "Fors", "Gran", "Holm", "Isaksson", "Jung", "Karlsson", "Lind", "Moreau", "Nyberg"]
_CITIES = ("Stockholm", "Helsinki", "Oslo", "Copenhagen", "Tallinn", "Riga", "Gothenburg")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ts(t: datetime) -> str:
    return t.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def work_order(rng: random.Random, tenant: str, at: datetime) -> Record:
    """optiqo.adhoc_work_orders (target work_orders, the widest table: 19 columns)."""
    created = at - timedelta(hours=rng.randint(1, 500))
    done = rng.random() < 0.4
    return {
        "id": _uuid(rng),
        "tenant_id": tenant,
        "site_id": _uuid(rng),
        "zone_id": _uuid(rng),
        "title": _sentence(rng, 4).capitalize(),
        "description": _sentence(rng, rng.randint(8, 30)),
        "status": rng.choice(("open", "assigned", "in_progress", "done", "cancelled")),
        "priority": rng.randint(1, 5),
        "requested_by": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
        "assignee_id": _uuid(rng),
        "due_at": _ts(created + timedelta(days=rng.randint(1, 14))),
        "completed_at": _ts(at) if done else None,
        "estimated_minutes": rng.randint(10, 240),
        "cost_eur": round(rng.uniform(20, 900), 2),
        "billable": rng.random() < 0.7,
        "tags": [rng.choice(_WORDS) for _ in range(rng.randint(0, 3))],
        "metadata": {"source": "mobile", "floor": rng.randint(0, 12), "photos": rng.randint(0, 4)},
        "created_at": _ts(created),
        "updated_at": _ts(at),
    }


def site(rng: random.Random, tenant: str, at: datetime) -> Record:
    """optiqo.customer_sites (target sites: 14 columns)."""
    return {
        "id": _uuid(rng),
        "tenant_id": tenant,
        "customer_id": _uuid(rng),
        "name": f"{rng.choice(_CITIES)} {_sentence(rng, 2).title()}",
        "street_address": f"{rng.choice(_LAST)}gatan {rng.randint(1, 200)}",
        "city": rng.choice(_CITIES),
        "postal_code": f"{rng.randint(10000, 99999)}",
        "country_code": rng.choice(("SE", "FI", "NO", "DK", "EE")),
        "floor_area_m2": round(rng.uniform(100, 40000), 2),
        "timezone": "Europe/Stockholm",
        "latitude": round(rng.uniform(55, 69), 6),
        "longitude": round(rng.uniform(5, 30), 6),
        "created_at": _ts(at - timedelta(days=rng.randint(1, 900))),
        "updated_at": _ts(at),
    }


def employee(rng: random.Random, tenant: str, at: datetime) -> Record:
    """optiqo.staff_members (target employees: 13 columns)."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return {
        "id": _uuid(rng),
        "tenant_id": tenant,
        "team_id": _uuid(rng),
        "first_name": first,
        "last_name": last,
        "email": f"{first.lower()}.{last.lower()}{rng.randint(1, 999)}@example.com",
        "phone": f"+46 70 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
        "role": rng.choice(("cleaner", "supervisor", "manager")),
        "employment_type": rng.choice(("full_time", "part_time", "contractor")),
        "hourly_cost_eur": round(rng.uniform(18, 55), 2),
        "active": rng.random() < 0.9,
        "created_at": _ts(at - timedelta(days=rng.randint(1, 900))),
        "updated_at": _ts(at),
    }


def sensor_reading(rng: random.Random, tenant: str, at: datetime) -> Record:
    """optiqo.sensor_readings (target sensor_readings: the high-volume per-event table)."""
    return {
        "id": _uuid(rng),
        "tenant_id": tenant,
        "sensor_id": f"snr-{rng.randint(1, 400):04d}",
        "room_id": _uuid(rng),
        "measured_at": _ts(at - timedelta(seconds=rng.randint(1, 60))),
        "visitor_count": rng.randint(0, 300),
        "occupancy_pct": round(rng.uniform(0, 100), 2),
        "battery_pct": rng.randint(5, 100),
        "created_at": _ts(at),
        "updated_at": _ts(at),
    }


# source table -> (target table, generator)
TABLES: dict[str, tuple[str, Generator]] = {
    "adhoc_work_orders": ("work_orders", work_order),
    "customer_sites": ("sites", site),
    "staff_members": ("employees", employee),
    "sensor_readings": ("sensor_readings", sensor_reading),
}
# FULL_SYNC benchmark: the widest tables (19, 14 and 13 columns)
WIDEST = ("adhoc_work_orders", "customer_sites", "staff_members")


def rows(source: str, tenant: str, n: int, seed: int, at: datetime = BASE_TIME) -> list[Record]:
    """n rows of `source` for `tenant`, all at version `at`."""
    rng = random.Random(seed)
    gen = TABLES[source][1]
    return [gen(rng, tenant, at) for _ in range(n)]


def with_tenant(records: Sequence[Record], tenant: str) -> list[Record]:
    """The same rows under another tenant (same ids, same values)."""
    return [{**r, "tenant_id": tenant} for r in records]


def with_version(records: Sequence[Record], at: datetime) -> list[Record]:
    """The same rows at a newer version."""
    stamp = _ts(at)
    return [{**r, "updated_at": stamp} for r in records]


def _copy_value(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        text = "t" if value else "f"
    elif isinstance(value, dict):
        text = json.dumps(value)
    elif isinstance(value, list):
        text = "{" + ",".join(json.dumps(str(v)) for v in value) + "}"
    else:
        text = str(value)
    return (
        text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def copy_text(records: Sequence[Record], columns: Sequence[str]) -> bytes:
    """The rows in COPY text format, columns in the given order."""
    return "".join(
        "\t".join(_copy_value(r.get(c)) for c in columns) + "\n" for r in records
    ).encode()
