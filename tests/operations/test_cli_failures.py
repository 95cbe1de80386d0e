"""An expected failure of an `optiqoflow` command is one line on stderr,
`optiqoflow <command>: ...`, and a documented exit code (docs/operations.md, "Exit
codes"): 1 found a problem or refused, 2 usage or configuration, 3 the database could
not be reached. A bug still shows its traceback.

Each command runs as an operator runs it: a process of its own."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from operations.embedded import free_port
from tests.operations.processes import COMMAND, environment, one_line, optiqoflow


def test_a_retention_the_database_refuses(db_dsn: str) -> None:
    done = optiqoflow("prune", "--retention", "1 hour", env=environment(DATABASE_URL=db_dsn))
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert line.startswith("optiqoflow prune: log retention 01:00:00 is shorter than one day")
    assert "[OF017]" in line and "hint: Logs are kept in daily partitions" in line


def test_a_retention_the_database_cannot_read(db_dsn: str) -> None:
    done = optiqoflow("prune", "--retention", "banana", env=environment(DATABASE_URL=db_dsn))
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert line.startswith("optiqoflow prune: ")
    assert 'invalid input syntax for type interval: "banana"' in line


@pytest.mark.parametrize("command", [["status"], ["prune"], ["replay", "--log-id", "1"]])
def test_a_database_never_migrated_says_to_migrate(empty_db_dsn: str, command: list[str]) -> None:
    done = optiqoflow(*command, env=environment(DATABASE_URL=empty_db_dsn))
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line.startswith(f"optiqoflow {command[0]}: the database is not migrated")
    assert "run `optiqoflow migrate`" in line


@pytest.mark.parametrize("command", ["migrate", "status", "prune"])
def test_a_database_that_does_not_answer(command: str) -> None:
    nobody = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres?connect_timeout=5"
    done = optiqoflow(command, env=environment(DATABASE_URL=nobody))
    assert done.returncode == 3
    line = one_line(done.stderr)
    assert line.startswith(f"optiqoflow {command}: connection failed")
    assert "Connection refused" in line


@pytest.mark.parametrize("command", ["migrate", "status", "charts"])
def test_a_database_url_that_is_not_one(command: str) -> None:
    args = ["charts", "deps"] if command == "charts" else [command]
    done = optiqoflow(*args, env=environment(DATABASE_URL="banana"))
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line.startswith(f"optiqoflow {' '.join(args)}: DATABASE_URL is not a PostgreSQL")


def test_a_reader_that_goes_away(db_dsn: str) -> None:
    # `optiqoflow status --json | head -1`: the pipe closes before the command writes
    proc = subprocess.Popen(
        [*COMMAND, "status", "--json"],
        env=environment(DATABASE_URL=db_dsn),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 1
    assert err == ""  # quietly: no BrokenPipeError, no "Exception ignored"


def test_a_bug_keeps_its_traceback(db_dsn: str) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute(
            """
            DROP VIEW optiqoflow.sync_health CASCADE;
            CREATE FUNCTION public.boom() RETURNS TABLE (tenant_id uuid, target_table text)
              LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$;
            CREATE VIEW optiqoflow.sync_health AS SELECT * FROM public.boom();
            """
        )
    done = optiqoflow("status", env=environment(DATABASE_URL=db_dsn))
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "boom" in done.stderr
