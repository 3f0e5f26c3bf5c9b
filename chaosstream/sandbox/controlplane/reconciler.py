"""Session reconciler (``api/internal/services/session_reconciler.go``).

Every ``timers.reconciler_interval`` (and once at start), measured from ``sessions.updated_at``:
* ``terminating`` longer than ``reconciler_stuck`` with its agent connected → a new ``stop_session``;
  without a connected agent and longer than ``reconciler_force`` → ``terminated``
  (``termination_reason='agent_unavailable'``, ``terminated_at`` when migration 007 is applied);
* ``pending`` longer than ``reconciler_force`` with its agent not connected → ``failed``.
"""

import asyncio
import datetime as dt
import logging

from chaosstream.sandbox.controlplane.db import utcnow
from chaosstream.sandbox.controlplane.dispatcher import Dispatcher, long_command_id

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.db = dispatcher.db
        self.hub = dispatcher.hub
        self.config = dispatcher.config
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="session-reconciler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # noqa: BLE001 - keep reconciling after DB hiccups
                log.exception("reconciler cycle failed")
            await asyncio.sleep(self.config.timers.reconciler_interval)

    async def run_once(self) -> None:
        timers = self.config.timers
        now = utcnow()
        stuck = now - dt.timedelta(seconds=timers.reconciler_stuck)
        force = now - dt.timedelta(seconds=timers.reconciler_force)
        rows = await self.db.fetch(
            "SELECT id, state, agent_id, namespace, updated_at FROM sessions"
            " WHERE state IN ('terminating', 'pending') AND updated_at < %s",
            (stuck,),
        )
        for row in rows:
            connected = self.hub.is_connected(row["agent_id"])
            if row["state"] == "terminating":
                if connected:
                    await self._resend_stop(row)
                elif row["updated_at"] < force:
                    await self._force_terminate(row["id"])
            elif not connected and row["updated_at"] < force:
                await self.db.execute(
                    "UPDATE sessions SET state = 'failed', updated_at = %s WHERE id = %s AND state = 'pending'",
                    (utcnow(), row["id"]),
                )
                log.info("reconciler: pending session %s failed (agent unavailable)", row["id"])

    async def _resend_stop(self, row: dict) -> None:
        payload = {
            "sessionId": row["id"],
            "namespace": row["namespace"] or self.config.namespace,
            "deletePVC": False,
        }
        command = await self.dispatcher.create(
            row["agent_id"], "stop_session", row["id"], payload, long_command_id()
        )
        await self.dispatcher.dispatch(command)
        log.info("reconciler: re-sent stop_session for %s (%s)", row["id"], command["command_id"])

    async def _force_terminate(self, session_id: str) -> None:
        sets = "state = 'terminated', updated_at = %(now)s"
        if self.db.has_column("sessions", "termination_reason"):
            sets += ", termination_reason = 'agent_unavailable', terminated_at = %(now)s"
        await self.db.execute(
            f"UPDATE sessions SET {sets} WHERE id = %(id)s AND state = 'terminating'",
            {"now": utcnow(), "id": session_id},
        )
        log.info("reconciler: force-terminated %s (agent unavailable)", session_id)
