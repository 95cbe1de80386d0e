"""Fixtures of the operations tests that run `optiqoflow` as a process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from operations.embedded import free_port
from tests.operations.processes import Serve, serving

StartServe = Callable[..., Serve]


@pytest.fixture
def start_serve(tmp_path: Path) -> Iterator[StartServe]:
    """start_serve(env, port=None): `optiqoflow serve` in tmp_path on a free port (or
    `port`); killed at the end of the test if it is still running."""
    started: list[Serve] = []

    def start(env: dict[str, str], port: int | None = None) -> Serve:
        s = serving(env, tmp_path, free_port() if port is None else port)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
        s.finish()
