"""Read-only access to StreamSpace's PostgreSQL (`agents`, `agent_commands`, `sessions`).

Every query runs in a read-only transaction with a statement timeout and parameterised SQL. There is
no HTTP endpoint that reads `agent_commands` (see docs/streamspace.md, "1. Database" and "3.6 Dispatch and retry"), so command probes read the database.
"""

import math
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, TypeVar

import psycopg
from chaoslib.exceptions import ActivityFailed
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from chaosstream.settings import Settings, redact

__all__ = ["query", "close_connections"]

T = TypeVar("T")

# One connection per (thread, DSN, timeout): wait-probes poll several times a second, and a fresh
# connection costs more than the query. A broken connection is dropped and opened again once.
_LOCAL = threading.local()


def _connections() -> Dict[Any, psycopg.Connection]:
    if not hasattr(_LOCAL, "connections"):
        _LOCAL.connections = {}
    return _LOCAL.connections


def _connect(settings: Settings, limit: float) -> psycopg.Connection:
    dsn = settings.require_db()
    key = (dsn, settings.db_statement_timeout_ms)
    conns = _connections()
    conn = conns.get(key)
    if conn is not None and not conn.closed:
        return conn
    try:
        conn = psycopg.connect(
            dsn,
            connect_timeout=max(1, math.ceil(limit)),
            options=f"-c statement_timeout={settings.db_statement_timeout_ms} -c default_transaction_read_only=on",
            row_factory=dict_row,
            application_name="chaostoolkit-streamspace",
        )
    except psycopg.Error as exc:
        raise ActivityFailed(
            f"Cannot connect to the StreamSpace database ({_first_line(exc, settings)}): check the 'db_dsn' "
            "secret (STREAMSPACE_DB_DSN)."
        ) from None
    conn.read_only = True
    conns[key] = conn
    return conn


def _first_line(exc: BaseException, settings: Settings) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0] if text else type(exc).__name__, settings)


def _bounded(settings: Settings, limit: float, work: Callable[[], T]) -> T:
    """Run `work` (connect + query) within `limit` seconds. A server that accepts the connection and never
    answers would block libpq forever (statement_timeout is enforced by that same server), so the work runs
    in a helper thread; on time-out its connection is abandoned, never reused."""
    result: Dict[str, Any] = {}
    conns = _connections()

    def run() -> None:
        _LOCAL.connections = conns  # the caller's cache: connections are reused across polls
        try:
            result["value"] = work()
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    worker = threading.Thread(target=run, name="chaosstream-sql", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        conns.pop((settings.db_dsn, settings.db_statement_timeout_ms), None)
        raise ActivityFailed(
            f"The StreamSpace database did not answer within {limit:g}s: check that PostgreSQL is up and not "
            "overloaded, and that 'db_dsn' points at it."
        )
    if "error" in result:
        raise result["error"]
    return result["value"]


def query(
    settings: Settings, sql: str, params: Sequence[Any] = (), timeout: Optional[float] = None
) -> List[Dict[str, Any]]:
    """Run one read-only parameterised query and return its rows as dicts, within `timeout` seconds
    (default: 'streamspace_http_timeout'; connecting counts too)."""
    limit = min(settings.http_timeout, timeout) if timeout else settings.http_timeout
    return _bounded(settings, limit, lambda: _query(settings, sql, params, limit))


def _query(settings: Settings, sql: str, params: Sequence[Any], limit: float) -> List[Dict[str, Any]]:
    for attempt in (1, 2):
        conn = _connect(settings, limit)
        try:
            with conn.transaction():
                with conn.cursor() as cur:
                    cur.execute(sql, params)
                    return list(cur.fetchall()) if cur.description else []
        except pg_errors.UndefinedColumn as exc:
            raise ActivityFailed(
                f"The StreamSpace database lacks a column this probe reads ({_first_line(exc, settings)}): is "
                "'db_dsn' pointing at a StreamSpace v2 (agent architecture) database with its schema complete?"
            ) from None
        except pg_errors.UndefinedTable as exc:
            raise ActivityFailed(
                f"The StreamSpace database lacks a table this probe reads ({_first_line(exc, settings)}): is "
                "'db_dsn' pointing at the StreamSpace database?"
            ) from None
        except pg_errors.QueryCanceled:
            raise ActivityFailed(
                f"A StreamSpace database query exceeded the {settings.db_statement_timeout_ms} ms statement "
                "timeout: raise 'streamspace_db_statement_timeout_ms' or check the database load."
            ) from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            _drop(settings)
            if attempt == 2:
                raise ActivityFailed(
                    f"Lost the connection to the StreamSpace database ({_first_line(exc, settings)}): check that "
                    "PostgreSQL is up and 'db_dsn' is right."
                ) from None
        except psycopg.Error as exc:
            raise ActivityFailed(
                f"StreamSpace database query failed: {_first_line(exc, settings)}."
            ) from None
    return []  # pragma: no cover - the loop always returns or raises


def _drop(settings: Settings) -> None:
    conn: Optional[psycopg.Connection] = _connections().pop(
        (settings.db_dsn, settings.db_statement_timeout_ms), None
    )
    if conn is not None:
        try:
            conn.close()
        except psycopg.Error:
            pass


def close_connections() -> None:
    """Close this thread's cached connections (tests and long-lived controls call this)."""
    for conn in _connections().values():
        try:
            conn.close()
        except psycopg.Error:
            pass
    _connections().clear()
