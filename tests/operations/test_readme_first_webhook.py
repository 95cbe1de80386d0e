"""README, "Send your first webhook": its shell commands, run as written with bash
against a receiver on a fresh database, get exactly the answers the README shows.

Only the receiver's address is substituted (the README's 127.0.0.1:8080 is whatever
port this test got); the secret is the one the README starts the receiver with.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.operations.conftest import StartServe
from tests.operations.processes import environment

README = Path(__file__).resolve().parents[2] / "README.md"
ADDRESS = "127.0.0.1:8080"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_send_your_first_webhook_as_the_readme_says(db_dsn: str, start_serve: StartServe) -> None:
    text = section("Send your first webhook")
    (commands,) = blocks(text, "sh")
    applied, duplicate = (json.loads(b) for b in blocks(text, "json"))
    started_with = re.search(r"OPTIQO_WEBHOOK_SECRET='([^']*)' make serve", text)
    assert started_with, "the section says how the receiver is started"
    assert commands.count(ADDRESS) == 1

    serve = start_serve(environment(DATABASE_URL=db_dsn, OPTIQO_WEBHOOK_SECRET=started_with[1]))
    serve.wait_ready()
    script = commands.replace(ADDRESS, f"127.0.0.1:{serve.port}")

    def run() -> Any:
        done = subprocess.run(
            ["bash", "-e", "-c", script], capture_output=True, text=True, timeout=60
        )
        assert (done.returncode, done.stderr) == (0, ""), done
        return json.loads(done.stdout)

    assert run() == applied
    assert run() == duplicate
    serve.proc.terminate()
    assert serve.proc.wait(timeout=60) == 0
