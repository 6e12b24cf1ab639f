"""Private PostgreSQL, Redis and MinIO processes that a test may SIGKILL and start again.

The shared stack of ``scripts/stack.sh`` serves every test of a session (and other checkouts
on the machine); fault tests must not kill it. Each process here lives in a temporary
directory of its own, on free ports of 127.0.0.1, in a process group of its own: ``kill9()``
SIGKILLs that group (the postmaster and its backends die together, as in a crash of the
host), ``restart()`` starts the same binary on the same port and data (PostgreSQL then runs
crash recovery), ``stop()`` shuts down cleanly.

Secrets are generated per stack and reach the processes through their environment (MinIO)
or stdin (the PostgreSQL role password), never a command line or a log line.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

PG_BIN = Path("/usr/lib/postgresql/15/bin")
MINIO_ROOT_USER = "minioadmin-private"
DB_NAME = DB_USER = "mms"
READY_SECONDS = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def minio_binary() -> Path:
    """The MinIO build ``scripts/stack.sh`` caches (newest if several versions are cached)."""
    cache = Path(os.environ.get("MMS_CACHE_DIR", Path.home() / ".cache" / "mms"))
    found = sorted(glob.glob(str(cache / "minio-*" / "minio")))
    if not found:
        raise RuntimeError(f"no MinIO binary in {cache}; run scripts/stack.sh up once")
    return Path(found[-1])


class PrivateProcess:
    """One dependency: start, wait until ready, SIGKILL, start again, stop."""

    name = "process"

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.log_path = base / f"{self.name}.log"
        self.kills = 0

    # Subclasses fill these in.
    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.base)}

    def ready(self) -> bool:
        return port_open(self.port)

    def run_as(self) -> str | None:
        """OS user to run as (PostgreSQL refuses root); None keeps ours."""
        return None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.alive():
            return
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        """Start the process without waiting until it is ready (to race its start-up)."""
        self._log = self.log_path.open("ab")
        user = self.run_as()
        self.proc = subprocess.Popen(
            self.command(),
            env=self.environment(),
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: kill9 takes its children too
            user=user,
            group=pwd.getpwnam(user).pw_gid if user else None,
            extra_groups=[] if user else None,
        )

    def wait_ready(self, timeout: float = READY_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} not ready after {timeout:.0f}s; see {self.log_path}"
                )
            time.sleep(0.1)

    def kill9(self) -> None:
        """SIGKILL the process and everything in its process group, and reap it."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._wait_group_gone(self.proc.pid)
        self.kills += 1
        self._close_log()

    def restart(self) -> None:
        """Start again on the same port with the same data (after ``kill9`` or ``stop``)."""
        if self.alive():
            self.kill9()
        self.start()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self._close_log()
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._wait_group_gone(self.proc.pid)
        self._close_log()

    @staticmethod
    def _wait_group_gone(pgid: int) -> None:
        """Children of a killed leader may linger an instant; a restart must not meet them."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            time.sleep(0.05)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class PrivatePostgres(PrivateProcess):
    """PostgreSQL 15 with role and database ``mms`` (pgcrypto), run as the ``postgres`` user."""

    name = "postgres"

    def __init__(self, base: Path, password: str) -> None:
        super().__init__(base)
        self.password = password
        self.os_user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.data = base / "pgdata"
        self.sockets = base / "pgrun"

    def run_as(self) -> str | None:
        return self.os_user if os.geteuid() == 0 else None

    def _as_pg(self, args: list[str], stdin: str | None = None) -> None:
        user = self.run_as()
        result = subprocess.run(
            args,
            input=(stdin or "").encode(),
            cwd="/",
            capture_output=True,
            user=user,
            group=pwd.getpwnam(user).pw_gid if user else None,
            extra_groups=[] if user else None,
            check=False,
        )
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").replace(self.password, "***")
            raise RuntimeError(f"{args[0]} failed: {message[-2000:]}")

    def init(self) -> None:
        # The postgres user must own (and so traverse) its directories.
        uid = pwd.getpwnam(self.os_user).pw_uid
        gid = pwd.getpwnam(self.os_user).pw_gid
        for path in (self.data, self.sockets):
            path.mkdir(mode=0o700)
            os.chown(path, uid, gid)
        self._as_pg(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.os_user,
                "--no-locale",
                "--encoding=UTF8",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ]
        )

    def command(self) -> list[str]:
        return [
            str(PG_BIN / "postgres"),
            "-D",
            str(self.data),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={self.port}",
            "-c",
            f"unix_socket_directories={self.sockets}",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=32MB",
        ]

    def ready(self) -> bool:
        return (
            subprocess.run(
                [str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                check=False,
            ).returncode
            == 0
        )

    def provision(self) -> None:
        """Role, database and pgcrypto; the password goes to psql on stdin."""
        sql = f"""SET log_statement = 'none';
CREATE ROLE {DB_USER} LOGIN CREATEDB PASSWORD '{self.password}';
CREATE DATABASE {DB_NAME} OWNER {DB_USER};
\\c template1
CREATE EXTENSION IF NOT EXISTS pgcrypto;
\\c {DB_NAME}
CREATE EXTENSION IF NOT EXISTS pgcrypto;
"""
        self._as_pg(
            [
                str(PG_BIN / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.sockets),
                "-p",
                str(self.port),
                "-U",
                self.os_user,
                "-d",
                "postgres",
            ],
            stdin=sql,
        )


class PrivateRedis(PrivateProcess):
    """Redis without persistence: like the shared stack, it only holds locks and caches, and a
    crash that forgets every lock is the harder case for fencing."""

    name = "redis"

    def command(self) -> list[str]:
        conf = self.base / "redis.conf"
        conf.write_text(
            f"bind 127.0.0.1\nport {self.port}\nprotected-mode yes\ndaemonize no\n"
            f'dir "{self.base}"\nsave ""\nappendonly no\n'
        )
        return [shutil.which("redis-server") or "redis-server", str(conf)]

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class PrivateMinio(PrivateProcess):
    """MinIO on one drive; the root password reaches it through its environment only."""

    name = "minio"

    def __init__(self, base: Path, password: str) -> None:
        super().__init__(base)
        self.password = password
        self.console_port = free_port()
        self.data = base / "minio-data"
        self.data.mkdir()
        self.binary = minio_binary()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "server",
            str(self.data),
            "--address",
            f"127.0.0.1:{self.port}",
            "--console-address",
            f"127.0.0.1:{self.console_port}",
            "--quiet",
        ]

    def environment(self) -> dict[str, str]:
        return {
            **super().environment(),
            "MINIO_ROOT_USER": MINIO_ROOT_USER,
            "MINIO_ROOT_PASSWORD": self.password,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        }

    def ready(self) -> bool:
        try:
            return httpx.get(self.endpoint + "/minio/health/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


class PrivateStack:
    """PostgreSQL, Redis and MinIO of one's own; ``env`` is what the service needs."""

    def __init__(self, prefix: str = "mms-private-", parent: str = "/tmp") -> None:
        # /tmp (and /dev/shm, for a stack in memory) is world-traversable, so the postgres user
        # reaches its data directory.
        self.base = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        self.base.chmod(0o755)
        self.db_password = secrets.token_hex(24)
        self.minio_password = secrets.token_hex(24)
        self.encryption_key = secrets.token_hex(32)
        self.postgres = PrivatePostgres(self.base, self.db_password)
        self.redis = PrivateRedis(self.base)
        self.minio = PrivateMinio(self.base, self.minio_password)

    @property
    def processes(self) -> dict[str, PrivateProcess]:
        return {"postgres": self.postgres, "redis": self.redis, "minio": self.minio}

    def start(self) -> PrivateStack:
        try:
            self.postgres.init()
            self.postgres.start()
            self.postgres.provision()
            self.redis.start()
            self.minio.start()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def env(self) -> dict[str, str]:
        return {
            "MINIO_ENDPOINT": self.minio.endpoint,
            "MINIO_ROOT_USER": MINIO_ROOT_USER,
            "MINIO_ROOT_PASSWORD": self.minio_password,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis.port}/0",
            "MMS_DB_HOST": "127.0.0.1",
            "MMS_DB_PORT": str(self.postgres.port),
            "MMS_DB_NAME": DB_NAME,
            "MMS_DB_USER": DB_USER,
            "MMS_DB_PASSWORD": self.db_password,
            "MMS_DB_ENCRYPTION_KEY": self.encryption_key,
        }

    def stop(self, *, keep: bool = False) -> None:
        """Stop every process; remove the data unless ``keep`` (to read the logs)."""
        for process in (self.minio, self.redis, self.postgres):
            with contextlib.suppress(Exception):
                process.stop()
        if not keep:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PrivateStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(keep=exc_type is not None)
