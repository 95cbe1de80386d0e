"""`optiqoflow openapi`: the published contract (receiver/openapi.py), a valid OpenAPI 3.1
document with a JSON Schema per source table as the database builds it
(`optiqoflow.payload_schemas()`), every HTTP status receiver/answers.py can answer, both
signature schemes, a webhook per payload kind, and no tenant.

That the live receiver answers as the document says: tests/http/test_openapi_contract.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
import pytest
from openapi_spec_validator import validate

from operations import cli
from receiver import openapi
from receiver.openapi import KINDS
from tests.helpers import apply, full_sync, rec, upsert
from tests.http.outcomes import every_outcome

WEBHOOK = "/api/optiqo-webhook"
UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)


def _openapi(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert cli.main(["openapi", *args]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


@pytest.fixture
def document(
    db_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tenant: str
) -> tuple[dict[str, Any], str]:
    """The document of a database that has applied deliveries of `tenant` (also as text)."""
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    with psycopg.connect(db_dsn, autocommit=True) as c:
        assert apply(c, upsert(tenant, rec(None, title="x", extra_column=1)))["status"] == "applied"
        assert (
            apply(c, full_sync(tenant, [rec()], 0, table="zone_categories"))["status"] == "applied"
        )
    assert cli.main(["openapi"]) == 0
    text = capsys.readouterr().out
    return json.loads(text), text


def test_it_is_a_valid_openapi_3_1_document(document: tuple[dict[str, Any], str]) -> None:
    doc, _ = document
    validate(doc)  # openapi-spec-validator: OpenAPI 3.1 and its JSON Schema dialect
    assert doc["openapi"].startswith("3.1.")
    assert set(doc["paths"][WEBHOOK]) == {"post"}
    assert set(doc["webhooks"]) == set(KINDS)
    for kind in KINDS:
        body = doc["webhooks"][kind]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"]["$ref"].endswith("Payload")


def test_every_status_the_receiver_answers_is_documented(
    document: tuple[dict[str, Any], str],
) -> None:
    doc, _ = document
    answered = {str(o.http_status) for o in every_outcome()}
    assert answered == {"200", "400", "401", "408", "413", "415", "422", "500", "503"}
    for operation in [doc["paths"][WEBHOOK]["post"]] + [
        w["post"] for w in doc["webhooks"].values()
    ]:
        assert set(operation["responses"]) == answered
    unavailable = doc["components"]["responses"]["Unavailable"]
    assert unavailable["headers"]["Retry-After"]["$ref"] == "#/components/headers/RetryAfter"
    assert doc["components"]["headers"]["RetryAfter"]["required"] is True


def test_both_signature_schemes_are_security_schemes(document: tuple[dict[str, Any], str]) -> None:
    doc, _ = document
    schemes = doc["components"]["securitySchemes"]
    headers = {s["name"] for s in schemes.values() if s["in"] == "header"}
    assert headers == {
        "x-webhook-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
    security = doc["paths"][WEBHOOK]["post"]["security"]
    assert {"plainSignature": []} in security  # either scheme; Standard Webhooks' three together
    assert {
        "standardWebhookId": [],
        "standardWebhookTimestamp": [],
        "standardWebhookSignature": [],
    } in security


def test_a_record_schema_per_source_table_as_the_database_builds_it(
    document: tuple[dict[str, Any], str], db_dsn: str
) -> None:
    doc, _ = document
    with psycopg.connect(db_dsn) as c:
        row = c.execute("SELECT optiqoflow.payload_schemas()").fetchone()
        sources = {r[0] for r in c.execute("SELECT source_table FROM optiqoflow.table_mappings")}
    assert row is not None
    schemas = doc["components"]["schemas"]
    assert set(row[0]) == sources
    assert set(schemas["SourceTable"]["enum"]) == sources
    for source in sources:
        assert schemas[f"Record.{source}"] == row[0][source]  # passed on, never re-derived
        for kind in ("INSERT", "UPDATE", "DELETE", "FULL_SYNC"):
            assert schemas[f"{kind}.{source}"]["properties"]["table"] == {"const": source}
    # schema evolution's column is there: the schemas follow the current columns
    assert "extra_column" in schemas["Record.adhoc_work_orders"]["properties"]


def test_it_names_no_tenant(document: tuple[dict[str, Any], str], tenant: str) -> None:
    _, text = document
    assert tenant not in text
    assert not UUID.findall(text)


def test_servers_are_listed_when_asked(
    db_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    doc = _openapi(capsys, "--server", "https://sync.example.com")
    assert doc["servers"] == [{"url": "https://sync.example.com"}]
    assert "servers" not in _openapi(capsys)


def test_a_database_not_migrated_is_exit_2(
    empty_db_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_db_dsn)
    assert cli.main(["openapi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optiqoflow openapi: ") and "optiqoflow migrate" in err


def test_no_mapping_and_odd_table_names_still_make_a_valid_document() -> None:
    validate(openapi.document({}))  # nothing mapped yet: any table, any record
    odd = openapi.document({"site rooms/é": {"type": "object"}, "site rooms_é": {"type": "object"}})
    validate(odd)  # component names are made of the characters OpenAPI allows, unique
    records = [name for name in odd["components"]["schemas"] if name.startswith("Record.")]
    assert len(records) == 2
    assert odd["components"]["schemas"]["SourceTable"]["enum"] == ["site rooms/é", "site rooms_é"]


def _examples(heading: str) -> list[Any]:
    """The JSON blocks of a section of docs/payloads.md, each line of a block that holds
    several answers parsed on its own."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "payloads.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    found: list[Any] = []
    for block in re.findall(r"```json\n(.*?)```", section, re.S):
        try:
            found.append(json.loads(block))
        except json.JSONDecodeError:
            found.extend(json.loads(line) for line in block.splitlines() if line.strip())
    return found


def test_the_repair_exchanges_of_the_payload_reference_follow_the_document() -> None:
    """docs/payloads.md's RECONCILE and scoped FULL_SYNC examples, payloads and answers,
    validate against the published schemas; a RECONCILE answer is `applied`."""
    from jsonschema import Draft202012Validator

    doc = openapi.document({})
    validate(doc)
    assert "RECONCILE" in doc["webhooks"]

    def validator(name: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": f"#/components/schemas/{name}", **doc})

    examples = _examples("Repair without peering: RECONCILE and scoped FULL_SYNC")
    payloads = [e for e in examples if "type" in e]
    answers = [e for e in examples if "status" in e]
    assert [p["type"] for p in payloads] == ["RECONCILE", "RECONCILE", "FULL_SYNC"]
    assert len(answers) == 4
    for p in payloads:
        validator("Payload").validate(p)
    for a in answers:
        validator("Applied").validate(a)
        assert a["status"] == "applied"
    reconciles = [a for a in answers if a["operation"] == "RECONCILE"]
    assert [len(a["buckets"]) for a in reconciles] == [2, 2, 0]
    bad = {**payloads[0], "digits": 3}
    assert list(validator("ReconcilePayload").iter_errors(bad))
