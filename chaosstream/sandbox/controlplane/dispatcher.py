"""Command dispatch through ``agent_commands`` (``api/internal/services/command_dispatcher.go``).

Lifecycle: every row is inserted ``pending``; handed to a connected agent → ``sent``; the agent's
``ack`` / ``complete`` / ``failed`` messages → ``ack`` / ``completed`` / ``failed``.
Baseline: a command for a disconnected agent stays ``pending`` and is replayed (oldest first) when the
agent connects. Faults: ``fail-commands-while-disconnected`` marks it failed at once (the real code);
``no-replay-on-reconnect`` leaves pending rows alone until the next API start.
"""

import logging
import secrets
import uuid
from typing import Any, Dict, List, Optional, Tuple

from chaosstream.sandbox.controlplane.config import ControlPlaneConfig
from chaosstream.sandbox.controlplane.db import Database, Jsonb, Row, rfc3339, utcnow
from chaosstream.sandbox.controlplane.hub import AgentConnection, AgentHub

log = logging.getLogger(__name__)
ACTIONS = ("start_session", "stop_session", "hibernate_session", "wake_session")
NOT_CONNECTED = "agent is not connected"

# Baseline only: what a `complete` does to the session row -> (new state, states it may leave).
# None = any state but the final ones. The real API leaves sessions untouched
# (docs/streamspace.md#13-status-values-and-who-writes-them).
RESULT_STATES: Dict[str, Tuple[str, Optional[Tuple[str, ...]]]] = {
    "start_session": ("running", ("pending",)),
    "wake_session": ("running", ("waking", "hibernated")),
    "hibernate_session": ("hibernated", ("hibernating", "running")),
    "stop_session": ("terminated", None),
}


def short_command_id() -> str:
    """``cmd-`` + 8 hex, the session handlers' format."""
    return "cmd-" + secrets.token_hex(4)


def long_command_id() -> str:
    """``cmd-`` + UUID, the admin endpoint's and reconciler's format."""
    return "cmd-" + str(uuid.uuid4())


def command_message(row: Row) -> Dict[str, Any]:
    return {
        "type": "command",
        "timestamp": rfc3339(utcnow()),
        "payload": {"commandId": row["command_id"], "action": row["action"], "payload": row["payload"] or {}},
    }


class Dispatcher:
    def __init__(self, db: Database, hub: AgentHub, config: ControlPlaneConfig) -> None:
        self.db = db
        self.hub = hub
        self.config = config
        hub.on_register.append(self._on_agent_connected)
        if not config.profile.commands_fail_unless_local:
            hub.on_unsent = self.requeue

    def _touch(self) -> str:
        """``, updated_at = …`` when migration 004 added the column (otherwise the real UPDATE fails)."""
        return ", updated_at = %(now)s" if self.db.has_column("agent_commands", "updated_at") else ""

    async def create(
        self, agent_id: str, action: str, session_id: Optional[str], payload: Dict[str, Any], command_id: str
    ) -> Row:
        """Insert a ``pending`` command row and return it."""
        row = await self.db.fetchrow(
            "INSERT INTO agent_commands (command_id, agent_id, session_id, action, payload, status, created_at)"
            " VALUES (%s, %s, %s, %s, %s, 'pending', %s) RETURNING *",
            (command_id, agent_id, session_id, action, Jsonb(payload), utcnow()),
        )
        assert row is not None
        return row

    async def dispatch(self, row: Row) -> str:
        """Hand one pending command to its agent; return the command's resulting status."""
        conn = self.hub.get(row["agent_id"])
        if conn is None:
            # as built (profile) only this replica's hub counts: command_dispatcher.go:217-221
            if (
                self.config.fault("fail-commands-while-disconnected")
                or self.config.profile.commands_fail_unless_local
            ):
                await self._mark(row["command_id"], "failed", "pending", error=NOT_CONNECTED)
                return "failed"
            return "pending"  # baseline: kept for replay when the agent connects
        if conn.queue.full():
            await self._mark(row["command_id"], "failed", "pending", error="agent send buffer full")
            return "failed"
        # mark before queueing so a fast ack can never be overwritten by a late `sent`
        if await self._mark(row["command_id"], "sent", "pending"):
            if conn.send(command_message(row)) or self.config.profile.commands_fail_unless_local:
                return "sent"  # as built a send on a closed connection is lost (agent_hub.go:499-505)
            # the socket closed while the row was marked: back to pending, for the agent's live socket
            # (if it has one by now) or its next connect, as a command for a disconnected agent
            await self._mark(row["command_id"], "pending", "sent")
            return await self.dispatch(row) if self.hub.get(row["agent_id"]) is not None else "pending"
        return "skipped"

    async def _mark(self, command_id: str, status: str, expect: str, error: Optional[str] = None) -> bool:
        stamp = {
            "sent": ", sent_at = %(now)s",
            "failed": ", error_message = %(error)s",
            "pending": ", sent_at = NULL",
        }[status]
        count = await self.db.execute(
            f"UPDATE agent_commands SET status = %(status)s{stamp}{self._touch()}"
            " WHERE command_id = %(id)s AND status = %(expect)s",
            {"status": status, "now": utcnow(), "error": error, "id": command_id, "expect": expect},
        )
        return count > 0

    async def _on_agent_connected(self, conn: AgentConnection) -> None:
        if not self.config.fault("no-replay-on-reconnect"):
            await self.replay(conn)

    async def replay(self, conn: AgentConnection) -> int:
        """Send every ``pending`` command of the agent, oldest first, queued as one burst."""
        rows = await self.db.fetch(
            f"UPDATE agent_commands SET status = 'sent', sent_at = %(now)s{self._touch()}"
            " WHERE agent_id = %(agent)s AND status = 'pending' RETURNING *",
            {"now": utcnow(), "agent": conn.agent_id},
        )
        rows.sort(key=lambda r: (r["created_at"], r["command_id"]))
        if rows:
            log.info("replaying %d pending command(s) to %s", len(rows), conn.agent_id)
            conn.send_many([command_message(r) for r in rows])
        return len(rows)

    async def requeue(self, closed: AgentConnection, command_ids: List[str]) -> None:
        """Commands marked `sent` that a closed socket never wrote go back to `pending` and on to the agent's
        live socket, if it has one (else its next connect replays them): the promise of the Redis AgentHub
        that a replica restart or a replaced socket loses no command. As built they are lost with the Go
        connection's Send channel (agent_hub.go:250-255,309-312), so this runs in the intended profile only."""
        rows = await self.db.fetch(
            f"UPDATE agent_commands SET status = 'pending', sent_at = NULL{self._touch()}"
            " WHERE command_id = ANY(%(ids)s) AND agent_id = %(agent)s AND status = 'sent' RETURNING *",
            {"now": utcnow(), "ids": command_ids, "agent": closed.agent_id},
        )
        if not rows:
            return
        log.info("%d command(s) queued on closed socket %s back to pending", len(rows), closed.id)
        live = self.hub.get(closed.agent_id)
        if live is not None:
            await self.replay(live)

    async def dispatch_pending(self) -> None:
        """API start-up: re-dispatch all pending rows (``DispatchPendingCommands``)."""
        rows = await self.db.fetch(
            "SELECT * FROM agent_commands WHERE status = 'pending' ORDER BY created_at"
        )
        for row in rows:
            await self.dispatch(row)

    # --- agent → control plane ------------------------------------------------------------------

    async def on_ack(self, agent_id: str, command_id: str) -> None:
        await self.db.execute(
            f"UPDATE agent_commands SET status = 'ack', acknowledged_at = %(now)s{self._touch()}"
            " WHERE command_id = %(id)s AND agent_id = %(agent)s",
            {"now": utcnow(), "id": command_id, "agent": agent_id},
        )

    async def on_complete(self, agent_id: str, command_id: str, result: Dict[str, Any]) -> None:
        row = await self.db.fetchrow(
            f"UPDATE agent_commands SET status = 'completed', completed_at = %(now)s{self._touch()}"
            " WHERE command_id = %(id)s AND agent_id = %(agent)s RETURNING action, session_id",
            {"now": utcnow(), "id": command_id, "agent": agent_id},
        )
        # as built the session row is left as it is (profile.complete_updates_sessions)
        if (
            row
            and row["session_id"]
            and row["action"] in RESULT_STATES
            and self.config.profile.complete_updates_sessions
        ):
            await self._apply_result(row["action"], row["session_id"], result)

    async def on_failed(self, agent_id: str, command_id: str, error: str) -> None:
        row = await self.db.fetchrow(
            f"UPDATE agent_commands SET status = 'failed', error_message = %(error)s{self._touch()}"
            " WHERE command_id = %(id)s AND agent_id = %(agent)s RETURNING action, session_id",
            {"error": error, "id": command_id, "agent": agent_id, "now": utcnow()},
        )
        if row and row["session_id"] and row["action"] == "start_session":
            await self.db.execute(
                "UPDATE sessions SET state = 'failed', updated_at = %s WHERE id = %s AND state = 'pending'",
                (utcnow(), row["session_id"]),
            )

    async def _apply_result(self, action: str, session_id: str, result: Dict[str, Any]) -> None:
        """Baseline: move the session to the state the completed command produced."""
        state, leaves = RESULT_STATES[action]
        now = utcnow()
        sets = ["state = %(state)s", "updated_at = %(now)s"]
        if action in ("start_session", "wake_session") and isinstance(result.get("podName"), str):
            sets.append("pod_name = %(pod)s")
        if action == "stop_session" and self.db.has_column("sessions", "terminated_at"):
            sets.append("terminated_at = %(now)s")
        guard: List[str] = (
            ["state = ANY(%(leaves)s)"] if leaves else ["state NOT IN ('terminated', 'deleted')"]
        )
        await self.db.execute(
            f"UPDATE sessions SET {', '.join(sets)} WHERE id = %(id)s AND {' AND '.join(guard)}",
            {
                "state": state,
                "now": now,
                "pod": result.get("podName"),
                "id": session_id,
                "leaves": list(leaves or ()),
            },
        )
