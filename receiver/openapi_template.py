"""The static part of the published contract (receiver.openapi): the endpoint, the payload
kinds, the answers, every HTTP status `receiver.answers` decides, and both signature
schemes, as an OpenAPI 3.1 template. receiver.openapi adds the per-table record schemas
the database gives and serves the whole."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PATH = "/openapi.json"  # where receiver.openapi serves the document
WEBHOOK_PATH = "/api/optiqo-webhook"  # receiver.app's, which imports this module
KINDS = ("INSERT", "UPDATE", "DELETE", "FULL_SYNC", "RECONCILE", "BATCH")
REALTIME = ("INSERT", "UPDATE", "DELETE")  # what a BATCH envelope may hold
RECORD_KINDS = ("INSERT", "UPDATE", "DELETE", "FULL_SYNC")  # those that carry records
_KIND_SCHEMA = {
    "INSERT": "InsertPayload",
    "UPDATE": "UpdatePayload",
    "DELETE": "DeletePayload",
    "FULL_SYNC": "FullSyncPayload",
    "RECONCILE": "ReconcilePayload",
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
for an import (or, limited to some buckets, a repair), a BATCH envelope of real-time events,
or a RECONCILE: its bucket figures of a tenant's table, answered with the buckets that
differ (it changes no data and is never a duplicate). The receiver checks the signature
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
    "digits": {"enum": [2, 4], "description": "RECONCILE: hex digits of the buckets compared."},
    "within": {
        "type": "array",
        "items": {"type": "string"},
        "description": "RECONCILE: the 2-digit buckets the comparison was limited to.",
    },
    "compared": {"type": "integer", "minimum": 0, "description": "RECONCILE: buckets compared."},
    "differing": {"type": "integer", "minimum": 0, "description": "RECONCILE: buckets that differ."},
    "buckets": {
        "type": "array",
        "description": "RECONCILE: the buckets whose figures differ, with ours (with ours: every "
        "bucket of the scope where we hold rows).",
        "items": _ref("BucketFigures"),
    },
    "ours": {
        "const": True,
        "description": "RECONCILE with ours: buckets holds our figures, nothing was compared.",
    },
    "pairs_left_out": {
        "type": "integer",
        "minimum": 0,
        "description": "RECONCILE with pairs: differing buckets answered without their pairs.",
    },
    "read_at": {"type": "string", "description": "RECONCILE: the sender's read_at, echoed."},
    "sub_buckets_of": {
        "type": "array",
        "items": {"type": "string"},
        "description": "RECONCILE with sub_buckets: the differing buckets (at most 16) whose "
        "sub-buckets follow.",
    },
    "sub_buckets": {
        "type": "object",
        "additionalProperties": _ref("Figures"),
        "description": "RECONCILE with sub_buckets: our figures of their non-empty sub-buckets.",
    },
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
                "Bucket": {
                    "type": "string",
                    "pattern": "^[0-9a-f]{2}([0-9a-f]{2})?$",
                    "description": "The first 2 (bucket) or 4 (sub-bucket) hex digits of "
                    "md5(id::text), the id's canonical text (README, Repair without peering).",
                },
                "Figures": {
                    "type": "object",
                    "required": ["rows", "checksum"],
                    "properties": {
                        "rows": {"type": "integer", "minimum": 0},
                        "checksum": {
                            "type": ["string", "integer"],
                            "pattern": "^-?[0-9]{1,40}$",
                            "description": "Sum of the first 64 bits (signed) of md5(id || '|' || "
                            "updated_at in UTC with microseconds), in decimal; a string keeps it exact.",
                        },
                    },
                },
                "BucketFigures": {
                    "type": "object",
                    "required": ["bucket", "rows", "checksum"],
                    "properties": {
                        "bucket": _ref("Bucket"),
                        "rows": {"type": "integer", "minimum": 0},
                        "checksum": {"type": "string"},
                        "pairs": {
                            "type": "array",
                            "description": "Asked with pairs: our (id, version) pairs of the bucket.",
                            "items": {
                                "type": "array",
                                "prefixItems": [
                                    {"type": "string", "format": "uuid"},
                                    {"type": "string"},
                                ],
                                "minItems": 2,
                                "maxItems": 2,
                            },
                        },
                    },
                },
                "ReconcilePayload": {
                    "type": "object",
                    "description": "Our extension: a source's bucket figures of one tenant x table; "
                    "the answer lists the buckets that differ, with ours (or, with ours, our "
                    "figures of every bucket, compared by the source). Changes no data, never a "
                    "duplicate, logged like any delivery. Malformed figures: OF026.",
                    "required": ["type", "table", "tenant_id", "read_at"],
                    "anyOf": [
                        {"required": ["buckets"]},
                        {"required": ["ours"], "properties": {"ours": {"const": True}}},
                    ],
                    "properties": {
                        "type": {"const": "RECONCILE", "description": "Matched case-insensitively."},
                        "table": _ref("SourceTable"),
                        "tenant_id": _ref("TenantId"),
                        "read_at": _ref("Timestamp"),
                        "digits": {
                            "enum": [2, 4],
                            "description": "2 (default): the 256 buckets; 4: the sub-buckets of "
                            "the buckets in `within`.",
                        },
                        "within": {
                            "type": "array",
                            "items": {"type": "string", "pattern": "^[0-9a-f]{2}$"},
                            "minItems": 1,
                            "maxItems": 16,
                            "description": "The 2-digit buckets compared (required with digits 4).",
                        },
                        "pairs": {
                            "type": "boolean",
                            "description": "Answer our (id, version) pairs of each differing bucket "
                            "of at most 64 of our rows, for at most 64 buckets.",
                        },
                        "sub_buckets": {
                            "type": "boolean",
                            "description": "With 2 digits: also answer our figures of the "
                            "sub-buckets of the first 16 differing buckets, from the same read.",
                        },
                        "ours": {
                            "type": "boolean",
                            "description": "true: compare nothing and answer our figures of "
                            "every bucket of the scope where we hold rows; without buckets, pairs "
                            "and sub_buckets.",
                        },
                        "buckets": {
                            "type": "object",
                            "propertyNames": _ref("Bucket"),
                            "additionalProperties": _ref("Figures"),
                            "maxProperties": 4096,
                            "description": "Required unless ours. Every bucket of the scope that "
                            "has rows at the source; one left out has none.",
                        },
                        "event_id": {
                            "type": ["string", "number"],
                            "description": "Logged; never makes a RECONCILE a duplicate.",
                        },
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
