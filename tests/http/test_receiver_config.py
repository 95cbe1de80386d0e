"""Configuration from the environment (receiver.config)."""

from __future__ import annotations

from pathlib import Path

import pytest

from receiver.config import ENVIRONMENT, Config, ConfigError, environment_table


def test_secret_is_required_with_a_hint() -> None:
    for env in ({}, {"OPTIQO_WEBHOOK_SECRET": ""}):
        with pytest.raises(ConfigError, match="export OPTIQO_WEBHOOK_SECRET"):
            Config.from_env(env)


def test_defaults(tmp_path: Path) -> None:
    c = Config.from_env({"OPTIQO_WEBHOOK_SECRET": "s"}, cwd=tmp_path)
    assert c.secrets == ("s",)
    assert c.max_body_bytes == 16 * 1024 * 1024
    assert c.database_url is None
    assert c.data_dir == tmp_path / ".optiqoflow"
    assert (c.read_timeout, c.timestamp_tolerance) == (30.0, 300)
    assert (c.pool_min, c.pool_max) == (2, 10)
    assert c.large_body_parses == 2
    assert c.citus_delegation == "auto"
    assert (c.unauthenticated_bytes, c.unauthenticated_small_bodies) == (64 * 1024 * 1024, 128)


def test_every_variable_is_read(tmp_path: Path) -> None:
    env = {
        "OPTIQO_WEBHOOK_SECRET": " with spaces kept ",
        "OPTIQO_WEBHOOK_PREVIOUS_SECRETS": " old1\n old2\told3 ",
        "OPTIQO_MAX_BODY_BYTES": "1000",
        "OPTIQO_UNAUTHENTICATED_BYTES": "5000",
        "OPTIQO_UNAUTHENTICATED_SMALL_BODIES": "12",
        "DATABASE_URL": "postgresql://u@h/db",
        "OPTIQOFLOW_DATA_DIR": "/var/lib/optiqoflow",
        "OPTIQO_READ_TIMEOUT_SECONDS": "2.5",
        "OPTIQO_TIMESTAMP_TOLERANCE_SECONDS": "60",
        "OPTIQO_POOL_MIN": "0",
        "OPTIQO_POOL_MAX": "3",
        "OPTIQO_POOL_TIMEOUT_SECONDS": "1",
        "OPTIQO_LOCK_TIMEOUT_SECONDS": "0.75",
        "OPTIQO_TABLE_CONNECTIONS": "2",
        "OPTIQO_RETRY_AFTER_SECONDS": "7",
        "OPTIQO_LARGE_BODY_PARSES": "3",
        "OPTIQO_GROUP_COMMIT": "24",
        "OPTIQO_SHUTDOWN_TIMEOUT_SECONDS": "9",
        "OPTIQO_CITUS_DELEGATION": " OFF ",
    }
    assert set(env) == {v.name for v in ENVIRONMENT}
    c = Config.from_env(env, cwd=tmp_path)
    assert c.secrets == (" with spaces kept ", "old1", "old2", "old3")
    assert c.max_body_bytes == 1000
    assert (c.unauthenticated_bytes, c.unauthenticated_small_bodies) == (5000, 12)
    assert c.database_url == "postgresql://u@h/db"
    assert c.data_dir == Path("/var/lib/optiqoflow")
    assert (c.read_timeout, c.timestamp_tolerance) == (2.5, 60)
    assert (c.pool_min, c.pool_max, c.pool_timeout, c.lock_timeout) == (0, 3, 1.0, 0.75)
    assert c.table_share == 2
    assert Config.from_env({"OPTIQO_WEBHOOK_SECRET": "s", "OPTIQO_POOL_MAX": "3"}).table_share == 1
    assert Config.from_env({"OPTIQO_WEBHOOK_SECRET": "s"}).table_share == 5  # half of 10
    assert (c.retry_after, c.shutdown_timeout) == (7, 9.0)
    assert c.large_body_parses == 3
    assert c.group_commit == 24
    assert c.citus_delegation == "off"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OPTIQO_MAX_BODY_BYTES", "16MiB"),
        ("OPTIQO_MAX_BODY_BYTES", "0"),
        ("OPTIQO_UNAUTHENTICATED_BYTES", "0"),
        ("OPTIQO_UNAUTHENTICATED_BYTES", "1048576"),  # below OPTIQO_MAX_BODY_BYTES
        ("OPTIQO_UNAUTHENTICATED_SMALL_BODIES", "0"),
        ("OPTIQO_READ_TIMEOUT_SECONDS", "-1"),
        ("OPTIQO_READ_TIMEOUT_SECONDS", "nan"),
        ("OPTIQO_LOCK_TIMEOUT_SECONDS", "-1"),
        ("OPTIQO_TIMESTAMP_TOLERANCE_SECONDS", "0"),
        ("OPTIQO_POOL_MIN", "20"),  # above OPTIQO_POOL_MAX
        ("OPTIQO_TABLE_CONNECTIONS", "11"),  # above OPTIQO_POOL_MAX
        ("OPTIQO_TABLE_CONNECTIONS", "0"),
        ("OPTIQO_LARGE_BODY_PARSES", "0"),
        ("OPTIQO_GROUP_COMMIT", "0"),
        ("OPTIQO_GROUP_COMMIT", "65"),
        ("OPTIQO_CITUS_DELEGATION", "yes"),
        ("OPTIQO_WEBHOOK_PREVIOUS_SECRETS", "whsec_!!notbase64"),
        ("OPTIQO_WEBHOOK_SECRET", "whsec_"),
        ("OPTIQO_WEBHOOK_SECRET", "bytes-\udcff"),  # not UTF-8 in the environment
    ],
)
def test_bad_values_refuse_to_start(name: str, value: str) -> None:
    env = {"OPTIQO_WEBHOOK_SECRET": "s", name: value}
    with pytest.raises(ConfigError) as refused:
        Config.from_env(env)
    assert name in str(refused.value)  # the message names what to fix


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "http://example.com/db",
        "https://u:secret@example.com/db",
        "dbname=x foo=bar",  # no such libpq keyword
        "postgresql://[::1/db",
        "postgresql://u@h:port/db",
        "host=h port=0",
    ],
)
def test_malformed_database_url_refuses_to_start_in_one_line(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Config.from_env({"OPTIQO_WEBHOOK_SECRET": "s", "DATABASE_URL": url})
    message = str(refused.value)
    assert message.startswith("DATABASE_URL ")
    assert "postgresql://user@host:5432/dbname" in message  # how to set it
    assert "\n" not in message
    assert "secret" not in message  # the value is never repeated


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@h/db",
        "postgres://u:p@db.example:6543/x?sslmode=require",
        "postgresql://nobody@127.0.0.1:1/unreachable",  # well formed: retried, not refused
        "host=/tmp port=5432,5433 dbname=x",
        "dbname=x",
    ],
)
def test_well_formed_database_url_is_kept_as_written(url: str) -> None:
    c = Config.from_env({"OPTIQO_WEBHOOK_SECRET": "s", "DATABASE_URL": url})
    assert c.database_url == url


def test_whsec_secret_may_be_unpadded() -> None:
    Config.from_env({"OPTIQO_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS"})


def test_environment_table_lists_every_variable() -> None:
    table = environment_table()
    for v in ENVIRONMENT:
        assert f"`{v.name}`" in table
