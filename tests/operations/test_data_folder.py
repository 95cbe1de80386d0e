"""The embedded PostgreSQL of a data folder (OPTIQOFLOW_DATA_DIR) is never orphaned, and
the operations commands use it when DATABASE_URL is not set.

- One receiver per data folder: a second one, while the first is alive, is refused.
- A receiver killed with SIGKILL leaves its postmaster running; the next receiver takes
  it over (saying so) and stops it when it stops.
- A command (`status`, `psql`, ...) uses the receiver's server and leaves it running; with
  no receiver it starts the server for its own run and stops it again; `dsn` prints the
  DSN of the running server.

Real embedded servers, each in a temporary folder of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from optiqoflow_db import migrate

from operations.embedded import EmbeddedPostgres, start_embedded, stop_command
from tests.operations.conftest import StartServe
from tests.operations.processes import SECRET, environment, one_line, optiqoflow


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """An empty data folder; whatever server is left in it is stopped at the end."""
    folder = tmp_path / "state"
    yield folder
    EmbeddedPostgres(folder / "pgdata", 0).stop("immediate")


@pytest.fixture
def prepared(state: Path) -> Path:
    """A data folder whose embedded PostgreSQL is initialised and migrated, and stopped."""
    server = start_embedded(state / "pgdata")
    migrate.upgrade(server.dsn)
    server.stop()
    return state


def running(state: Path) -> bool:
    return EmbeddedPostgres(state / "pgdata", 0).is_running()


def dsn_of(state: Path) -> str:
    """The DSN of the running server, from its postmaster.pid (line 4: the port)."""
    port = int((state / "pgdata" / "postmaster.pid").read_text().split("\n")[3])
    return EmbeddedPostgres(state / "pgdata", port).dsn


def serve_env(state: Path) -> dict[str, str]:
    return environment(OPTIQOFLOW_DATA_DIR=str(state), OPTIQO_WEBHOOK_SECRET=SECRET)


def ops_env(state: Path) -> dict[str, str]:
    return environment(OPTIQOFLOW_DATA_DIR=str(state))  # and no DATABASE_URL


def logged(stderr: str) -> list[str]:
    return [json.loads(line)["message"] for line in stderr.splitlines() if line.startswith("{")]


# --- receivers ----------------------------------------------------------------------------


def test_a_killed_receivers_postgresql_is_taken_over_and_stopped(
    state: Path, start_serve: StartServe
) -> None:
    first = start_serve(serve_env(state))
    first.wait_ready()
    first.proc.kill()  # kill -9: no chance to stop its PostgreSQL
    first.finish()
    assert running(state)  # what used to be orphaned

    second = start_serve(serve_env(state))
    second.wait_ready()
    second.proc.terminate()
    assert second.proc.wait(timeout=60) == 0
    messages = logged(second.finish())
    taken = [m for m in messages if "takes it over" in m]
    assert len(taken) == 1, messages
    assert f"left running by `optiqoflow serve` (pid {first.proc.pid}), which is gone" in taken[0]
    assert "embedded PostgreSQL stopped" in messages
    assert not running(state)


def test_a_second_receiver_on_one_data_folder_is_refused(
    state: Path, start_serve: StartServe
) -> None:
    first = start_serve(serve_env(state))
    first.wait_ready()
    second = start_serve(serve_env(state))
    assert second.proc.wait(timeout=60) == 1
    line = one_line(second.finish())
    assert line.startswith("optiqoflow serve: another receiver, `optiqoflow serve` ")
    assert f"(pid {first.proc.pid})" in line and "already serves" in line
    first.wait_ready(seconds=5)  # untouched
    first.proc.terminate()
    assert first.proc.wait(timeout=60) == 0
    assert not running(state)


# --- commands ------------------------------------------------------------------------------


def test_commands_use_the_receivers_postgresql_and_leave_it_running(
    state: Path, start_serve: StartServe
) -> None:
    serve = start_serve(serve_env(state))
    serve.wait_ready()
    env = ops_env(state)

    dsn = optiqoflow("dsn", env=env)
    assert dsn.returncode == 0, dsn.stderr
    assert dsn.stdout == dsn_of(state) + "\n"

    status = optiqoflow("status", "--json", env=env)
    assert (status.returncode, json.loads(status.stdout)) == (0, []), status.stderr
    psql = optiqoflow("psql", "-Atc", "SELECT count(*) > 0 FROM optiqoflow.table_mappings", env=env)
    assert (psql.returncode, psql.stdout) == (0, "t\n"), psql.stderr
    for command in (["prune"], ["charts", "deps"], ["migrate"]):
        done = optiqoflow(*command, env=env)
        assert done.returncode == 0, (command, done.stderr)

    assert running(state)  # the receiver's: not theirs to stop
    serve.wait_ready(seconds=5)
    serve.proc.terminate()
    assert serve.proc.wait(timeout=60) == 0
    assert "embedded PostgreSQL stopped" in logged(serve.finish())
    assert not running(state)


def test_a_command_starts_the_postgresql_it_needs_and_stops_it(prepared: Path) -> None:
    env = ops_env(prepared)
    assert not running(prepared)
    status = optiqoflow("status", "--json", env=env)
    assert (status.returncode, status.stderr) == (0, "")
    assert json.loads(status.stdout) == []
    assert not running(prepared)

    psql = optiqoflow("psql", "-Atc", "SELECT current_user", env=env)
    assert (psql.returncode, psql.stdout) == (0, "postgres\n"), psql.stderr
    assert not running(prepared)

    # `dsn` starts nothing: a DSN of a server that is not running is of no use
    dsn = optiqoflow("dsn", env=env)
    assert dsn.returncode == 1
    assert "is not running" in one_line(dsn.stderr)


def test_a_command_stops_a_postgresql_nobody_owns(prepared: Path) -> None:
    start_embedded(prepared / "pgdata")  # as a receiver killed with SIGKILL leaves it
    assert running(prepared)
    done = optiqoflow("prune", "--json", env=ops_env(prepared))
    assert done.returncode == 0, done.stderr
    assert not running(prepared)


def test_without_database_url_or_data_folder(tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    for command in (["status"], ["migrate"], ["dsn"], ["charts", "deps"]):
        done = optiqoflow(*command, env=ops_env(nowhere), cwd=tmp_path)
        assert done.returncode == 2, command
        line = one_line(done.stderr)
        assert f"DATABASE_URL is not set and there is no embedded PostgreSQL in {nowhere}" in line
    assert not nowhere.exists()  # nothing created in a folder that was never one
    # the default data folder is ./.optiqoflow of the working directory
    done = optiqoflow("status", env=environment(), cwd=tmp_path)
    assert done.returncode == 2
    assert str(tmp_path / ".optiqoflow" / "pgdata") in done.stderr
    assert os.listdir(tmp_path) == []


def test_the_stop_command_given_for_a_kept_server_stops_it(tmp_path: Path) -> None:
    # what `simulate --keep` can print for the servers it leaves running
    server = start_embedded(tmp_path / "data")
    try:
        done = subprocess.run(stop_command(server.data_dir), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert not server.is_running()
    finally:
        server.stop("immediate")
