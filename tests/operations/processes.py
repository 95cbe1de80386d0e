"""The `optiqoflow` command as an operator runs it: a process of its own, with an
environment of our choosing, its exit code and its output. Used by the tests of the
command line's failures, `serve`, and the embedded PostgreSQL of a data folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

SECRET = "operations-test-secret"
COMMAND = [sys.executable, "-m", "operations.cli"]  # what the console script runs


def environment(**extra: str) -> dict[str, str]:
    """Ours without any optiqoflow setting (DATABASE_URL, OPTIQO*, OPTIQOFLOW*), plus
    `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPTIQO", "DATABASE_URL"))  # OPTIQOFLOW_* too
    }
    env.update({"PYTHONUNBUFFERED": "1"}, **extra)
    return env


def optiqoflow(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def one_line(stderr: str) -> str:
    """The single line an expected failure prints; asserts there is exactly one and no
    traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@dataclass
class Serve:
    """`optiqoflow serve` running as a process."""

    proc: subprocess.Popen[str]
    port: int
    stderr: list[str] = field(default_factory=list)

    def wait_ready(self, seconds: float = 120) -> None:
        """Until /readyz answers 200; fails with the process's stderr if it exits."""
        deadline = time.monotonic() + seconds
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.finish()}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/readyz", timeout=2
                ) as answer:
                    if answer.status == 200:
                        return
            except urllib.error.HTTPError as e:
                with e:
                    last = e.code
            except (urllib.error.URLError, ConnectionError) as e:
                last = e
            time.sleep(0.1)
        self.proc.kill()
        raise AssertionError(f"/readyz never answered 200 (last: {last}): {self.finish()}")

    def finish(self, timeout: float = 60) -> str:
        """Wait for the process to end; its whole stderr."""
        if self.proc.stderr is not None and not self.proc.stderr.closed:
            _, err = self.proc.communicate(timeout=timeout)
            self.stderr.append(err)
        else:
            self.proc.wait(timeout)
        return "".join(self.stderr)


def serving(env: dict[str, str], cwd: Path, port: int) -> Serve:
    proc = subprocess.Popen(
        [*COMMAND, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Serve(proc, port)
