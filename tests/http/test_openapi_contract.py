"""The published contract (GET /openapi.json, receiver/openapi.py) against a live receiver
on a throwaway database: schemathesis generates requests from the document, each is
signed over its exact body bytes (plain or Standard Webhooks), and every answer must
conform to the document (a documented status code, content type and headers, a body
matching its schema), and none may be a 5xx.

Bounded: a fixed number of examples per generation mode, derandomized (the same requests
on every run), no shrinking, no example database.
"""

from __future__ import annotations

import asyncio
import collections
import json
from typing import Any

import hypothesis
import psycopg
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import checks as st_checks
from schemathesis.core import NOT_SET
from schemathesis.generation import GenerationMode

from operations import cli
from receiver.app import WEBHOOK_PATH
from tests.http_helpers import counting_listener, receiver_config, serving, signed_headers

EXAMPLES = {GenerationMode.POSITIVE: 60, GenerationMode.NEGATIVE: 30}
SIGNATURE_HEADERS = {"x-webhook-signature", "webhook-id", "webhook-timestamp", "webhook-signature"}
# what the document promises of every answer (and no 5xx); not schemathesis' opinions of
# what a valid request deserves (the database refuses some valid-looking payloads: 422)
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_headers_conformance,
    st_checks.response_schema_conformance,
]


def _body(case: Any) -> bytes:
    """The exact bytes sent (and signed): the generated body as JSON, or the bytes
    generated as an unparsable body."""
    if case.body is NOT_SET:
        return b""
    if isinstance(case.body, bytes):
        return case.body
    return json.dumps(case.body).encode()


def _fuzz(document: dict[str, Any], base_url: str) -> collections.Counter[int]:
    """Run the generated requests against the receiver (blocking: call it in a thread);
    the statuses seen. Raises on the first answer that does not conform."""
    schema = schemathesis.openapi.from_dict(document)
    operation = schema[WEBHOOK_PATH]["POST"]
    seen: collections.Counter[int] = collections.Counter()
    with requests.Session() as session:
        for mode, examples in EXAMPLES.items():

            @hypothesis.seed(20261207)
            @hypothesis.settings(
                max_examples=examples,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                suppress_health_check=list(hypothesis.HealthCheck),
            )
            @hypothesis.given(
                case=operation.as_strategy(generation_mode=mode),
                scheme=st.sampled_from(["plain", "standard"]),
            )
            def deliver(case: Any, scheme: str) -> None:
                raw = _body(case)
                generated = dict(case.headers or {})
                delivery_id = generated.get("x-webhook-id") if scheme == "standard" else None
                case.headers = {
                    k: v for k, v in generated.items() if k.lower() not in SIGNATURE_HEADERS
                }
                if isinstance(delivery_id, str) and not delivery_id.isprintable():
                    delivery_id = None
                headers = signed_headers(raw, scheme, delivery_id=delivery_id or None)
                del headers["Content-Type"]  # the case's own media type, as generated
                response = case.call(
                    base_url=base_url, session=session, headers=headers, data=raw, timeout=30
                )
                seen[response.status_code] += 1
                case.validate_response(response, checks=CHECKS)

            deliver()
    return seen


@pytest.mark.timeout(240)
async def test_generated_deliveries_get_documented_answers(db_dsn: str) -> None:
    async with serving(receiver_config(db_dsn)) as ep:
        reply = await ep.get("/openapi.json")
        assert reply.status == 200
        seen = await asyncio.to_thread(_fuzz, reply.body, ep.url(""))
    assert not [status for status in seen if status >= 500], seen
    assert seen[200] and seen[422], seen  # applied ones and refused ones, not only 4xx


async def test_the_operations_endpoints_answer_as_documented(db_dsn: str) -> None:
    async with serving(receiver_config(db_dsn)) as ep:
        document = (await ep.get("/openapi.json")).body

        def check() -> list[str]:
            schema = schemathesis.openapi.from_dict(document)
            checked = []
            for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
                case = schema[path]["GET"].Case()
                case.validate_response(case.call(base_url=ep.url(""), timeout=30), checks=CHECKS)
                checked.append(path)
            return checked

        assert len(await asyncio.to_thread(check)) == 4


async def test_served_document_is_the_cli_one_and_follows_the_mappings(
    db_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    async with serving(receiver_config(db_dsn)) as ep:
        served = (await ep.get("/openapi.json")).body
        assert cli.main(["openapi"]) == 0
        assert json.loads(capsys.readouterr().out) == served
        with psycopg.connect(db_dsn, autocommit=True) as c:
            c.execute(
                "INSERT INTO optiqoflow.table_mappings (source_table, target_table) "
                "VALUES ('equipment_items', 'equipment')"
            )
        again = (await ep.get("/openapi.json")).body
        assert again == served  # cached for a few seconds
        assert cli.main(["openapi"]) == 0
        printed = json.loads(capsys.readouterr().out)
    assert "Record.equipment_items" not in served["components"]["schemas"]
    assert printed["components"]["schemas"]["Record.equipment_items"]["required"] == ["id"]
    assert "equipment_items" in printed["components"]["schemas"]["SourceTable"]["enum"]


async def test_the_document_needs_the_database_503_like_readyz(empty_db_dsn: str) -> None:
    async with counting_listener() as (dsn, _), serving(receiver_config(dsn)) as down:
        reply = await down.get("/openapi.json")
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "7"
    assert "database unreachable" in reply.body["error"]
    async with serving(receiver_config(empty_db_dsn)) as unmigrated:
        reply = await unmigrated.get("/openapi.json")
    assert reply.status == 503
    assert "not migrated" in reply.body["error"]
