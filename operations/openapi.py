"""`optiqoflow openapi`: print the published contract, the OpenAPI 3.1 document the
receiver serves at GET /openapi.json (receiver.openapi), with the record schemas of the
database's current mappings (`optiqoflow.payload_schemas()`).

The database is `DATABASE_URL`, else the embedded PostgreSQL of the data folder
(operations.database.target).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import psycopg

from operations.database import target
from receiver import openapi


def contract(conn: psycopg.Connection[Any], servers: list[str] | None = None) -> dict[str, Any]:
    """The document, from the schemas of the database `conn` is connected to."""
    row = conn.execute(openapi.SCHEMAS_SQL).fetchone()
    return openapi.document(openapi.record_schemas(row[0] if row else None), servers=servers or ())


def _run(args: argparse.Namespace) -> int:
    with target("openapi") as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        doc = contract(conn, args.server)
    print(json.dumps(doc, indent=2))
    return 0


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "openapi",
        help="print the OpenAPI 3.1 document of the webhook endpoint (GET /openapi.json)",
        description=(
            "Prints the published contract: POST /api/optiqo-webhook, every payload kind, "
            "answer, HTTP status and signature scheme, with a JSON Schema of each mapped "
            "source table's record built by the database (optiqoflow.payload_schemas()). "
            "The same document a receiver serves at GET /openapi.json; it names no tenant."
        ),
    )
    p.add_argument(
        "--server",
        action="append",
        metavar="URL",
        help="a base URL of the receiver to list under `servers` (repeatable)",
    )
    p.set_defaults(func=_run)
