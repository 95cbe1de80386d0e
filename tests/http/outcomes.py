"""Every outcome receiver/answers.py can decide, built with its own constructors: what the
published contract (every status documented) and the 5xx alert (the outcomes it counts)
are checked against."""

from __future__ import annotations

import json

import psycopg

from receiver import answers
from receiver.answers import Outcome


def every_outcome() -> list[Outcome]:
    return [
        answers.unsupported_encoding("Content-Encoding gzip"),  # 415
        answers.too_large(1),  # 413
        answers.overloaded("no room"),  # 503
        answers.read_timeout(1.0),  # 408
        answers.incomplete(),  # 400
        answers.invalid_signature("plain scheme: mismatch"),  # 401
        answers.unusable(400, "invalid JSON", 1),
        answers.unusable(422, "a string holds \\u0000", 1),
        answers.internal_error("a bug"),  # 500
        *(  # 200, 422
            answers.from_answer(json.dumps({"status": status}), None, "direct")
            for status in answers.HTTP_STATUS
        ),
        answers.database_fault(psycopg.OperationalError("connection refused")),  # 503
        answers.database_fault(psycopg.errors.UndefinedFunction("no apply_webhook")),  # 503
    ]


def server_error_statuses() -> set[str]:
    """The outcomes (the `status` label of optiqoflow_deliveries_total) answered 5xx."""
    return {o.status for o in every_outcome() if o.http_status >= 500}
