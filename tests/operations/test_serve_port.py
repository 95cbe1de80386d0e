"""`optiqoflow serve` binds its port before anything else, and only then says it listens:
a busy port is one line on stderr and exit 1, before any database is touched."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from operations.embedded import EmbeddedPostgres
from tests.operations.conftest import StartServe
from tests.operations.processes import SECRET, environment, one_line


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port somebody else listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_a_busy_port_is_one_line_and_exit_1(
    db_dsn: str, busy_port: int, start_serve: StartServe
) -> None:
    serve = start_serve(environment(DATABASE_URL=db_dsn, OPTIQO_WEBHOOK_SECRET=SECRET), busy_port)
    assert serve.proc.wait(timeout=60) == 1
    line = one_line(serve.finish())
    assert (
        line == f"optiqoflow serve: cannot listen on 127.0.0.1:{busy_port}: Address already in use"
    )


def test_a_busy_port_starts_no_embedded_postgresql(
    tmp_path: Path, busy_port: int, start_serve: StartServe
) -> None:
    state = tmp_path / "state"
    env = environment(OPTIQOFLOW_DATA_DIR=str(state), OPTIQO_WEBHOOK_SECRET=SECRET)
    serve = start_serve(env, busy_port)
    assert serve.proc.wait(timeout=60) == 1
    assert "cannot listen" in one_line(serve.finish())
    assert not (state / "pgdata" / "PG_VERSION").exists()
    assert not EmbeddedPostgres(state / "pgdata", 0).is_running()


def test_listening_is_said_once_the_port_is_bound(db_dsn: str, start_serve: StartServe) -> None:
    serve = start_serve(environment(DATABASE_URL=db_dsn, OPTIQO_WEBHOOK_SECRET=SECRET))
    serve.wait_ready()
    serve.proc.terminate()
    assert serve.proc.wait(timeout=60) == 0
    messages = [line for line in serve.finish().splitlines() if "receiver" in line]
    listening = [m for m in messages if "receiver listening on" in m]
    assert len(listening) == 1
    assert f"http://127.0.0.1:{serve.port}/api/optiqo-webhook" in listening[0]
    assert "receiver stopped" in messages[-1]
