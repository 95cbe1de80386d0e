"""The embedded PostgreSQL of a data folder (OPTIQOFLOW_DATA_DIR) is never orphaned.

- One receiver per data folder: a second one, while the first is alive, is refused.
- A receiver killed with SIGKILL leaves its postmaster running; the next receiver takes
  it over (saying so) and stops it when it stops.

Real embedded servers, each in a temporary folder of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from operations.embedded import EmbeddedPostgres
from tests.operations.conftest import StartServe
from tests.operations.processes import SECRET, environment, one_line


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """An empty data folder; whatever server is left in it is stopped at the end."""
    folder = tmp_path / "state"
    yield folder
    EmbeddedPostgres(folder / "pgdata", 0).stop("immediate")


def running(state: Path) -> bool:
    return EmbeddedPostgres(state / "pgdata", 0).is_running()


def serve_env(state: Path) -> dict[str, str]:
    return environment(OPTIQOFLOW_DATA_DIR=str(state), OPTIQO_WEBHOOK_SECRET=SECRET)


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
