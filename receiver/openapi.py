"""The published contract: an OpenAPI 3.1 document of POST /api/optiqo-webhook.

A static template (receiver.openapi_template: the endpoint, the payload kinds, the answers, every HTTP
status `receiver.answers` decides, both signature schemes) plus one JSON Schema per source
table from the database, `optiqoflow.payload_schemas()`, which builds them from the current
mappings and columns: the receiver knows no table. No tenant is named anywhere.

Served at GET /openapi.json (built on request, cached for CACHE_SECONDS; 503 with
Retry-After when the database cannot answer) and printed by `optiqoflow openapi`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from aiohttp import hdrs, web

from receiver.openapi_template import (
    _COMPONENT_NAME,
    _KIND_SCHEMA,
    KINDS,
    REALTIME,
    RECORD_KINDS,
    _ref,
    _template,
)
from receiver.openapi_template import PATH as PATH  # served here
from receiver.openapi_template import WEBHOOK_PATH as WEBHOOK_PATH  # receiver.app's
from receiver.state import POOL, RECEIVER

log = logging.getLogger("optiqoflow.receiver")

SCHEMAS_SQL = "SELECT optiqoflow.payload_schemas()::text"
CACHE_SECONDS = 10.0  # a document at most this old is served again
TIMEOUT = 2.0  # seconds GET /openapi.json waits for a connection

# --- the document ----------------------------------------------------------------------------


def _names(tables: Iterable[str]) -> dict[str, str]:
    """source table -> a component name suffix of the characters OpenAPI allows, unique."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for table in tables:
        name = _COMPONENT_NAME.sub("_", table) or "_"
        base, n = name, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        names[table] = name
    return names


def _envelope(kind: str, table: Any, record: Any) -> dict[str, Any]:
    """The payload of one kind for one table (`table`: its schema; `record`: a record's),
    as it may stand in a BATCH envelope (its tenant may be the envelope's)."""
    record = {"allOf": [record, _ref("RecordKeys")]}
    props: dict[str, Any] = {
        "type": {"const": kind, "description": "Matched case-insensitively."},
        "table": table,
        "tenant_id": _ref("TenantId"),
    }
    versioned: dict[str, Any] | None = None  # where a record's version can be, but occurred_at
    if kind in ("INSERT", "UPDATE"):
        required = ["type", "table", "record"]
        props["record"] = record
        props["old_record"] = {
            "anyOf": [
                {"type": "object", "properties": {"tenant_id": _ref("TenantId")}},
                {"type": "null"},
            ],
            "description": "UPDATE: only its tenant_id is read (it must be the payload's tenant).",
        }
        versioned = {
            "record": {"required": ["updated_at"], "properties": {"updated_at": {"type": "string"}}}
        }
    elif kind == "DELETE":
        required = ["type", "table", "old_record"]
        props["record"] = {"description": "Ignored for a DELETE."}
        props["old_record"] = {
            **record,
            "description": "The deleted row, at least its id; its updated_at, when present, is "
            "the delete's version (else occurred_at, else the stored row's).",
        }
    else:  # FULL_SYNC
        required = ["type", "table", "records"]
        whole = {"type": ["integer", "null"], "minimum": 0}
        props["records"] = {"type": "array", "items": record}
        props["offset"] = {**whole, "description": "Position of the first record in the run."}
        props["total"] = {**whole, "description": "Records in the whole run."}
        props["sync_id"] = {
            "type": ["string", "number", "null"],
            "minLength": 1,
            "maxLength": 200,
            "description": "Names one run per tenant and table (a number is taken as its text).",
        }
        props["buckets"] = {
            "type": ["array", "null"],
            "items": {"type": "string", "pattern": "^([0-9a-f]{2}|[0-9a-f]{4})$"},
            "minItems": 1,
            "maxItems": 256,
            "description": "A repair: the run is limited to these buckets (2 or 4 hex digits of "
            "md5(id::text)); it removes only their rows, and every record must be in one (OF027).",
        }
        versioned = {
            "records": {
                "items": {
                    "required": ["updated_at"],
                    "properties": {"updated_at": {"type": "string"}},
                }
            }
        }
    props["event_id"] = _ref("EventId")
    props["occurred_at"] = {
        "anyOf": [_ref("Timestamp"), {"type": "null"}],
        "description": "When the change was committed at the source; the version of a record "
        "without updated_at.",
    }
    props["schema"] = {"description": "Ignored (Supabase's database-webhook field)."}
    schema: dict[str, Any] = {"type": "object", "required": required, "properties": props}
    if versioned is not None:  # every record has a version: its updated_at, or occurred_at
        schema["anyOf"] = [
            {"required": ["occurred_at"], "properties": {"occurred_at": {"type": "string"}}},
            {"properties": versioned},
        ]
    return schema


def _tenant_named(kind: str) -> dict[str, Any]:
    """The payload names its tenant: in the envelope, else where apply_webhook reads it."""
    where: list[dict[str, Any]] = [{"required": ["tenant_id"]}]
    has_tenant = {
        "type": "object",
        "required": ["tenant_id"],
        "properties": {"tenant_id": _ref("TenantId")},
    }
    if kind in ("INSERT", "UPDATE"):
        where.append({"required": ["record"], "properties": {"record": has_tenant}})
    if kind in ("INSERT", "UPDATE", "DELETE"):
        where.append({"required": ["old_record"], "properties": {"old_record": has_tenant}})
    if kind == "FULL_SYNC":
        where.append(
            {
                "required": ["records"],
                "properties": {"records": {"minItems": 1, "prefixItems": [has_tenant]}},
            }
        )
    return {"anyOf": where}


def document(
    record_schemas: Mapping[str, Any],
    *,
    version: str | None = None,
    servers: Iterable[str] = (),
) -> dict[str, Any]:
    """The OpenAPI document: the template plus `record_schemas`, optiqoflow.payload_schemas()'s
    {"<source_table>": <JSON Schema of a record>}."""
    doc = _template()
    doc["info"]["version"] = version or package_version()
    if servers:
        doc["servers"] = [{"url": url} for url in servers]
    schemas = doc["components"]["schemas"]
    tables = sorted(record_schemas)
    names = _names(tables)
    if tables:
        schemas["SourceTable"]["enum"] = tables
    for table in tables:
        schemas[f"Record.{names[table]}"] = copy.deepcopy(record_schemas[table])
    for kind in RECORD_KINDS:
        event = _KIND_SCHEMA[kind].replace("Payload", "Event")
        if tables:
            for table in tables:
                schemas[f"{kind}.{names[table]}"] = _envelope(
                    kind, {"const": table}, _ref(f"Record.{names[table]}")
                )
            schemas[event] = {
                "description": f"A {kind} payload, one variant per source table; inside a BATCH "
                "envelope its tenant may be the envelope's.",
                "oneOf": [_ref(f"{kind}.{names[table]}") for table in tables],
            }
        else:  # nothing mapped yet: any table name, any record
            schemas[event] = _envelope(kind, _ref("SourceTable"), _ref("Record"))
        schemas[_KIND_SCHEMA[kind]] = {
            "description": f"A {kind} payload that names its tenant.",
            "allOf": [_ref(event), _tenant_named(kind)],
        }
    schemas["BatchPayload"] = {
        "type": "object",
        "description": "Our extension: real-time events in one signed request and one commit.",
        "required": ["type", "events"],
        "properties": {
            "type": {"const": "BATCH", "description": "Matched case-insensitively."},
            "tenant_id": {
                **_ref("TenantId"),
                "description": "The tenant of every event without one.",
            },
            "events": {
                "type": "array",
                "items": {
                    "oneOf": [_ref(_KIND_SCHEMA[k].replace("Payload", "Event")) for k in REALTIME]
                },
                "maxItems": 10000,
                "description": "Each applied in order with its own answer; delivery id "
                "`<id>/<i>`. More than 10,000 events: the envelope is refused whole (OF024).",
            },
        },
    }
    schemas["Payload"] = {"oneOf": [_ref(_KIND_SCHEMA[kind]) for kind in KINDS]}
    return doc


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("optiqoflow")
    except PackageNotFoundError:  # a checkout that was never installed
        return "unknown"


def record_schemas(text: Any) -> dict[str, Any]:
    """optiqoflow.payload_schemas()'s answer (jsonb, as text or parsed) as a dict."""
    value = json.loads(text) if isinstance(text, str | bytes) else text
    if not isinstance(value, dict):
        raise ValueError(f"optiqoflow.payload_schemas() answered {value!r:.100}")
    return value


# --- GET /openapi.json ---------------------------------------------------------------------


class Contract:
    """The document as served: built from the database at most every CACHE_SECONDS, by
    one request at a time (the others wait for it and get the same bytes)."""

    def __init__(self, max_age: float = CACHE_SECONDS) -> None:
        self.max_age = max_age
        self._body: bytes | None = None
        self._built_at = 0.0
        self._lock = asyncio.Lock()

    def _fresh(self) -> bytes | None:
        if self._body is not None and time.monotonic() - self._built_at < self.max_age:
            return self._body
        return None

    async def body(self, request: web.Request) -> bytes:
        """The document's bytes; psycopg.Error when the database cannot give the schemas."""
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        async with self._lock:
            fresh = self._fresh()
            if fresh is not None:
                return fresh
            rcv = request.app[RECEIVER]
            async with request.app[POOL].connection(
                timeout=min(TIMEOUT, rcv.config.pool_timeout)
            ) as conn:
                cursor = await conn.execute(SCHEMAS_SQL)
                row = await cursor.fetchone()
                conn.answered_at = time.monotonic()
            doc = document(record_schemas(row[0] if row else None))
            self._body = json.dumps(doc, separators=(",", ":")).encode()
            self._built_at = time.monotonic()
            return self._body


CONTRACT = web.AppKey("contract", Contract)


async def handle_openapi(request: web.Request) -> web.Response:
    try:
        body = await request.app[CONTRACT].body(request)
    except psycopg.Error as e:
        state = e.sqlstate
        if state in ("3F000", "42883"):
            reason = f"database not migrated (run optiqoflow migrate): {state}"
        elif state is None or state.startswith("08"):
            reason = f"database unreachable: {state or e.__class__.__name__}"
        else:
            reason = f"optiqoflow.payload_schemas() failed: {state}"
        log.warning("GET %s: %s", PATH, reason)
        return web.json_response(
            {"error": f"the contract needs the database, retry later: {reason}"},
            status=503,
            headers={hdrs.RETRY_AFTER: str(request.app[RECEIVER].config.retry_after)},
        )
    return web.Response(body=body, content_type="application/json")
