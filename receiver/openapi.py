"""The published contract: an OpenAPI 3.1 document of POST /api/optiqo-webhook.

A static template (this module: the endpoint, the payload kinds, the answers, every HTTP
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
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from aiohttp import hdrs, web

from receiver.state import POOL, RECEIVER

log = logging.getLogger("optiqoflow.receiver")

SCHEMAS_SQL = "SELECT optiqoflow.payload_schemas()::text"
PATH = "/openapi.json"
CACHE_SECONDS = 10.0  # a document at most this old is served again
TIMEOUT = 2.0  # seconds GET /openapi.json waits for a connection

WEBHOOK_PATH = "/api/optiqo-webhook"  # receiver.app's, which imports this module
KINDS = ("INSERT", "UPDATE", "DELETE", "FULL_SYNC", "BATCH")
REALTIME = ("INSERT", "UPDATE", "DELETE")  # what a BATCH envelope may hold
_KIND_SCHEMA = {
    "INSERT": "InsertPayload",
    "UPDATE": "UpdatePayload",
    "DELETE": "DeletePayload",
    "FULL_SYNC": "FullSyncPayload",
    "BATCH": "BatchPayload",
}
_COMPONENT_NAME = re.compile(r"[^A-Za-z0-9._-]")


def _ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: Mapping[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _retry_after(response: dict[str, Any]) -> dict[str, Any]:
    response["headers"] = {"Retry-After": _ref("RetryAfter", "headers")}
    return response


# --- the static template ---------------------------------------------------------------------

_DESCRIPTION = """\
Optiqo POSTs one signed JSON payload per change (INSERT, UPDATE, DELETE), FULL_SYNC batches
for an import, or a BATCH envelope of real-time events. The receiver checks the signature
on the raw bytes, checks the body is strict JSON, and makes one database call,
`optiqoflow.apply_webhook(payload, delivery_id)`, whose answer it passes on.

The record schemas (`Record.<source_table>`) are built by the database from its current
table mappings and columns (`optiqoflow.payload_schemas()`): a key a table does not have
yet is added by schema evolution (or ignored, or refused, by the table's policy), so
records stay open to more keys. `type` is matched case-insensitively and `table` also
accepts a target table name; this document names the canonical spellings.

Read the answer, not only the status: a BATCH envelope answers 200 whenever it was
applied, with each event's own outcome in `events`. Field by field: docs/payloads.md."""

_ANSWER_PROPERTIES: dict[str, Any] = {
    "status": {"enum": ["applied", "duplicate", "stale", "refused"]},
    "table": {
        "type": ["string", "null"],
        "description": "The target table; null when refused before its table was known, and for a BATCH.",
    },
    "rows": {"type": "integer", "minimum": 0, "description": "Rows inserted, updated or removed."},
    "log_id": {"type": "integer", "description": "The delivery's optiqoflow.webhook_logs.id."},
    "operation": {
        "type": ["string", "null"],
        "description": "The payload's type, upper case (as sent when it is not a known type).",
    },
    "tenant_id": {"type": ["string", "null"], "format": "uuid"},
    "added_columns": {"type": "array", "items": {"type": "string"}},
    "ignored_columns": {"type": "array", "items": {"type": "string"}},
    "charts_invalidated": {
        "type": "array",
        "description": "Chart ids whose caches were invalidated.",
    },
    "reason": {"type": "string", "description": "Why a duplicate wrote nothing."},
    "stale": {"type": "integer", "minimum": 0},
    "duplicates": {"type": "integer", "minimum": 0},
    "upserted": {"type": "integer", "minimum": 0},
    "removed": {"type": "integer", "minimum": 0},
    "sync_run_id": {"type": "integer"},
    "run_state": {"enum": ["running", "complete", "abandoned"]},
    "error": {"type": "string"},
    "sqlstate": {"type": "string", "pattern": "^[0-9A-Z]{5}$"},
    "detail": {"type": "string"},
    "hint": {"type": "string"},
    "events": {
        "type": "array",
        "items": _ref("Answer"),
        "description": "BATCH: each event's answer, in order.",
    },
    "counts": {
        "type": "object",
        "additionalProperties": {"type": "integer"},
        "description": "BATCH: the number of events per status.",
    },
    "replay_of": {"type": "integer"},
}

_TIMESTAMP = {
    "type": "string",
    "anyOf": [{"format": "date-time"}, {"format": "date"}],
    "description": "ISO 8601, with an offset (`2026-11-26T10:00:00Z`); never now, epoch or infinity.",
}


def _template() -> dict[str, Any]:
    """Everything but the tables: the same for every database."""
    signed: list[dict[str, list[str]]] = [
        {"plainSignature": []},
        {"standardWebhookId": [], "standardWebhookTimestamp": [], "standardWebhookSignature": []},
    ]
    responses = {
        "200": _ref("Applied", "responses"),
        "400": _ref("BadRequest", "responses"),
        "401": _ref("InvalidSignature", "responses"),
        "408": _ref("Timeout", "responses"),
        "413": _ref("TooLarge", "responses"),
        "415": _ref("UnsupportedEncoding", "responses"),
        "422": _ref("Refused", "responses"),
        "500": _ref("InternalError", "responses"),
        "503": _ref("Unavailable", "responses"),
    }

    def delivery(schema: str, summary: str, operation_id: str) -> dict[str, Any]:
        return {
            "post": {
                "operationId": operation_id,
                "summary": summary,
                "tags": ["webhook"],
                "security": signed,
                "parameters": [_ref("DeliveryId", "parameters")],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(schema)}},
                },
                "responses": responses,
            }
        }

    health = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "optiqoflow webhook receiver",
            "version": "unknown",
            "summary": "Signed Optiqo webhooks, applied to PostgreSQL by one database call each.",
            "description": _DESCRIPTION,
        },
        "tags": [
            {"name": "webhook", "description": "Deliveries (docs/payloads.md)."},
            {"name": "operations", "description": "Health, readiness, metrics and this document."},
        ],
        "paths": {
            WEBHOOK_PATH: delivery("Payload", "Deliver one signed payload", "deliverWebhook"),
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "tags": ["operations"],
                    "summary": "The process is alive",
                    "responses": {"200": _json(health, "alive")},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "tags": ["operations"],
                    "summary": "The database answers and is migrated to this receiver's head",
                    "responses": {
                        "200": _json(health, "ready, with the revision"),
                        "503": _json(health, "not ready, with the reason"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "tags": ["operations"],
                    "summary": "Prometheus metrics (docs/monitoring.md)",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            PATH: {
                "get": {
                    "operationId": "openapi",
                    "tags": ["operations"],
                    "summary": "This document, with the record schemas of the current mappings",
                    "responses": {
                        "200": _json({"type": "object"}, "the OpenAPI document"),
                        "503": _ref("Unavailable", "responses"),
                    },
                }
            },
        },
        "webhooks": {
            kind: delivery(
                _KIND_SCHEMA[kind],
                f"A {kind} payload",
                "deliver" + kind.title().replace("_", ""),
            )
            for kind in KINDS
        },
        "components": {
            "securitySchemes": {
                "plainSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-webhook-signature",
                    "description": "Plain scheme (what Optiqo sends): lowercase hex HMAC-SHA256 of "
                    "the raw body, keyed with the UTF-8 bytes of the secret as written; an optional "
                    "`sha256=` prefix and upper-case hex are accepted. The body only is signed: "
                    "the delivery id header is bound to the body's SHA-256 by the receiver.",
                },
                "standardWebhookId": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "webhook-id",
                    "description": "Standard Webhooks: the message id (1 to 255 bytes), the "
                    "delivery id, signed.",
                },
                "standardWebhookTimestamp": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "webhook-timestamp",
                    "description": "Standard Webhooks: Unix seconds, within "
                    "OPTIQO_TIMESTAMP_TOLERANCE_SECONDS (300) of the receiver's clock.",
                },
                "standardWebhookSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "webhook-signature",
                    "description": "Standard Webhooks: space-separated `v1,<base64 HMAC-SHA256 of "
                    "{webhook-id}.{webhook-timestamp}.{body}>` entries, any one matching; the key "
                    "is the base64 part after `whsec_`, else the secret's UTF-8 bytes. When "
                    "present, this scheme alone decides.",
                },
            },
            "parameters": {
                "DeliveryId": {
                    "name": "x-webhook-id",
                    "in": "header",
                    "required": False,
                    "description": "The delivery id under the plain scheme (Standard Webhooks uses "
                    "webhook-id): once, 1 to 255 printable characters, else 400. A delivery id "
                    "seen before makes the delivery a duplicate.",
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 255,
                        "pattern": "^[!-~]+$",
                    },
                }
            },
            "headers": {
                "RetryAfter": {
                    "required": True,
                    "description": "Seconds to wait before retrying (OPTIQO_RETRY_AFTER_SECONDS).",
                    "schema": {"type": "integer", "minimum": 0},
                }
            },
            "responses": {
                "Applied": _json(
                    _ref("Applied"),
                    "apply_webhook answered applied, duplicate or stale (a BATCH: whenever it was "
                    "applied; read `counts` and `events`). Committed.",
                ),
                "BadRequest": _json(
                    _ref("Error"),
                    "Signed, but not a JSON object we accept (kept as bytes, with `log_id`), a "
                    "malformed delivery id header; or the body came incomplete.",
                ),
                "InvalidSignature": _json(
                    _ref("Error"),
                    "Signature missing, malformed or wrong, or a timestamp outside the tolerance.",
                ),
                "Timeout": _json(
                    _ref("Error"), "The body did not arrive within OPTIQO_READ_TIMEOUT_SECONDS."
                ),
                "TooLarge": _json(_ref("Error"), "The body is larger than OPTIQO_MAX_BODY_BYTES."),
                "UnsupportedEncoding": _json(
                    _ref("Error"), "A compressed body: send it as signed, uncompressed."
                ),
                "Refused": _json(
                    {"anyOf": [_ref("Refusal"), _ref("Unusable")]},
                    "The payload can never be applied (an OF... or class 22/23/54 SQLSTATE; kept "
                    "for a replay), or signed JSON that jsonb cannot hold (kept as bytes).",
                ),
                "InternalError": _json(
                    _ref("Error"), "A bug; nothing was committed, retrying is safe."
                ),
                "Unavailable": _retry_after(
                    _json(
                        _ref("Error"),
                        "Retry after Retry-After seconds: a transient database fault, the database "
                        "not migrated, or no room to receive the body yet. Nothing was committed.",
                    )
                ),
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "log_id": {"type": "integer"}},
                },
                "Unusable": {
                    "type": "object",
                    "required": ["error", "log_id"],
                    "properties": {"error": {"type": "string"}, "log_id": {"type": "integer"}},
                    "additionalProperties": False,
                },
                "Answer": {
                    "type": "object",
                    "description": "apply_webhook's answer, as PostgreSQL wrote it.",
                    "required": ["status", "table", "rows", "log_id", "operation"],
                    "properties": _ANSWER_PROPERTIES,
                },
                "Applied": {
                    "allOf": [_ref("Answer")],
                    "properties": {"status": {"enum": ["applied", "duplicate", "stale"]}},
                },
                "Refusal": {
                    "allOf": [_ref("Answer")],
                    "required": ["error", "sqlstate"],
                    "properties": {"status": {"const": "refused"}},
                },
                "TenantId": {
                    "type": "string",
                    "format": "uuid",
                    "description": "The tenant (any spelling PostgreSQL accepts). When absent, "
                    "record.tenant_id, else old_record.tenant_id, else records[0].tenant_id.",
                },
                "EventId": {
                    "type": ["string", "number"],
                    "description": "De-duplication key: an event_id applied before is a duplicate.",
                },
                "Timestamp": _TIMESTAMP,
                "SourceTable": {"type": "string", "description": "An Optiqo source table."},
                "RecordKeys": {
                    "description": "A record's keys are column names (OF007), never our "
                    "bookkeeping columns' `_of_...` (OF013).",
                    "propertyNames": {
                        "pattern": "^[a-z_][a-z0-9_]{0,62}$",
                        "not": {"pattern": "^_of_"},
                    },
                },
                "Record": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": {"type": "string", "format": "uuid"}},
                    "additionalProperties": True,
                },
            },
        },
    }


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
    for kind in KINDS[:-1]:
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
