"""Async PostgreSQL access: a small pool of ``psycopg.AsyncConnection`` plus time helpers.

All timestamps are naive UTC (see ``chaosstream.sandbox.schema``). Connections run in autocommit with
``TimeZone=UTC`` so ``now()`` agrees with the values written from Python.
"""

import asyncio
import contextlib
import datetime as dt
from typing import Any, AsyncIterator, Dict, List, Optional, Sequence

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

Row = Dict[str, Any]
__all__ = ["Database", "Jsonb", "Row", "rfc3339", "utcnow"]


def utcnow() -> dt.datetime:
    """Now as naive UTC, the form every TIMESTAMP column holds."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def rfc3339(value: Optional[dt.datetime]) -> Optional[str]:
    """Go's RFC3339Nano rendering of a naive-UTC timestamp (``2025-01-02T03:04:05.123Z``)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += ("." + f"{value.microsecond:06d}").rstrip("0")
    return text + "Z"


class Database:
    """A bounded set of autocommit connections; broken ones are dropped and reopened on demand."""

    def __init__(self, dsn: str, size: int = 10) -> None:
        self.dsn = dsn
        self._idle: List[psycopg.AsyncConnection] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False
        self.columns: Dict[str, set] = {}

    async def _connect(self) -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(
            self.dsn, autocommit=True, row_factory=dict_row, connect_timeout=5, options="-c TimeZone=UTC"
        )

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        async with self._slots:
            conn = None
            while self._idle and conn is None:
                candidate = self._idle.pop()
                conn = None if candidate.closed or candidate.broken else candidate
            if conn is None:
                conn = await self._connect()
            try:
                yield conn
            finally:
                healthy = not (conn.closed or conn.broken) and conn.info.transaction_status.name == "IDLE"
                if healthy and not self._closed:
                    self._idle.append(conn)
                else:
                    await conn.close()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection]:
        async with self.connection() as conn:
            async with conn.transaction():
                yield conn

    async def _run(self, query: str, params: Optional[Any], mode: str) -> Any:
        """Execute with one retry: pooled connections die silently when PostgreSQL restarts."""
        for attempt in (1, 2):
            try:
                async with self.connection() as conn:
                    cur = await conn.execute(query, params)
                    if mode == "all":
                        return await cur.fetchall()
                    if mode == "one":
                        return await cur.fetchone()
                    return cur.rowcount
            except psycopg.OperationalError:
                if attempt == 2:
                    raise
                await self._drop_idle()  # after a server restart every pooled connection is dead
        raise AssertionError("unreachable")

    async def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()

    async def fetch(self, query: str, params: Optional[Any] = None) -> List[Row]:
        return await self._run(query, params, "all")

    async def fetchrow(self, query: str, params: Optional[Any] = None) -> Optional[Row]:
        return await self._run(query, params, "one")

    async def execute(self, query: str, params: Optional[Any] = None) -> int:
        """Run a statement; return the number of rows it touched."""
        return await self._run(query, params, "count")

    async def load_columns(self, tables: Sequence[str]) -> None:
        """Remember which columns exist: migrations 004/007 may be missing (docs/streamspace.md#11-how-the-schema-is-created)."""
        rows = await self.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ANY(%s)",
            (list(tables),),
        )
        self.columns = {t: set() for t in tables}
        for row in rows:
            self.columns[row["table_name"]].add(row["column_name"])

    def has_column(self, table: str, column: str) -> bool:
        return column in self.columns.get(table, set())

    async def close(self) -> None:
        self._closed = True
        await self._drop_idle()
