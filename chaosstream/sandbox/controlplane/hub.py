"""AgentHub: the WebSocket connections of agents, keyed by agent_id (``api/internal/websocket/agent_hub.go``).

Each connection has a bounded send queue drained by one writer task, like the Go write pump. With the
``batched-frames`` fault the writer joins everything queued at that moment with ``\\n`` into a single text
frame (docs/streamspace.md#38-placement-and-frame-batching); otherwise every message is its own frame.
"""

import asyncio
import json
import logging
import secrets
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set

from aiohttp import web

from chaosstream.sandbox.controlplane import groundtruth
from chaosstream.sandbox.controlplane.config import ControlPlaneConfig
from chaosstream.sandbox.controlplane.db import Database, Jsonb, utcnow

log = logging.getLogger(__name__)
SEND_BUFFER = 256  # messages, as the Go hub's send channel
WRITE_WAIT = 10.0  # seconds, gorilla writeWait


def _command_ids(frame: str) -> List[str]:
    """The ids of the ``command`` messages in one written frame (batched frames join several with \\n)."""
    if '"command"' not in frame:
        return []
    ids = []
    for part in frame.split("\n"):
        try:
            message = json.loads(part)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("type") == "command":
            ids.append(str((message.get("payload") or {}).get("commandId", "")))
    return [i for i in ids if i]


class AgentConnection:
    """One agent socket: its send queue, writer task and last ``heartbeat`` message time."""

    def __init__(
        self, agent_id: str, ws: web.WebSocketResponse, batch_frames: bool, replica: str = ""
    ) -> None:
        # `<API pod>/<hex>` when the replica is a pod of the sandbox's API Deployment (ground truth only)
        self.id = f"{replica}/{secrets.token_hex(6)}" if replica else secrets.token_hex(6)
        self.agent_id = agent_id
        self.ws = ws
        self.batch_frames = batch_frames
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=SEND_BUFFER)
        self.last_heartbeat = time.monotonic()  # the Go hub sets LastPing at registration
        self.frames_sent = 0
        self._writer: Optional[asyncio.Task] = None
        # the Go connection's Receive channel: vnc_ready/vnc_data/vnc_error for the VNC proxy (as built,
        # every relay of this agent reads it); `gone` is set once the socket is closed
        self.receive: asyncio.Queue[dict] = asyncio.Queue(maxsize=SEND_BUFFER)
        self.gone = asyncio.Event()
        # the hub's hook for the commands this socket never wrote (AgentHub._socket_closed)
        self.on_closed: Optional[Callable[[AgentConnection], Awaitable[None]]] = None
        self.draining = False  # its replica is stopping: no new command is routed to it
        self.in_flight: Set[str] = set()  # commands written to the agent, not yet complete/failed

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{self.agent_id}")

    def send(self, message: dict) -> bool:
        """Queue ``message``; False when the buffer is full (the Go hub then drops it) or the socket is
        already closed (nothing would write it)."""
        if self.gone.is_set():
            return False
        try:
            self.queue.put_nowait(json.dumps(message, separators=(",", ":")))
            return True
        except asyncio.QueueFull:
            return False

    def send_many(self, messages: List[dict]) -> int:
        """Queue several messages without yielding, so a burst really is queued together."""
        return sum(1 for message in messages if self.send(message))

    async def _write_loop(self) -> None:
        try:
            while True:
                first = await self.queue.get()
                if self.batch_frames:
                    parts = [first]
                    while not self.queue.empty():
                        parts.append(self.queue.get_nowait())
                    frames = ["\n".join(parts)]
                else:
                    frames = [first]
                for frame in frames:
                    await asyncio.wait_for(self.ws.send_str(frame), WRITE_WAIT)
                    self.frames_sent += 1
                    self.in_flight.update(_command_ids(frame))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any write error ends the pump, as in Go
            log.info("writer of %s/%s stopped: %s", self.agent_id, self.id, exc)
            await self.ws.close()

    def unsent_commands(self) -> List[str]:
        """Once closed: the ids of the ``command`` messages still queued, which the writer never wrote."""
        ids: List[str] = []
        while not self.queue.empty():
            try:
                message = json.loads(self.queue.get_nowait())
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("type") == "command":
                ids.append(str((message.get("payload") or {}).get("commandId", "")))
        return [i for i in ids if i]

    async def close(self, code: int = 1000, message: bytes = b"") -> None:
        first = not self.gone.is_set()
        self.gone.set()
        if self._writer is not None:
            self._writer.cancel()
        if first and self.on_closed is not None:
            await self.on_closed(self)
        if not self.ws.closed:
            try:
                await asyncio.wait_for(self.ws.close(code=code, message=message), 2.0)
            except (TimeoutError, ConnectionError):
                pass


class AgentRoutes(Dict[str, "AgentConnection"]):
    """Which replica's socket holds each agent, shared by the API replicas that share routing: what the
    Redis AgentHub keeps as `agent:<id>:pod` and reaches with `pod:<name>:commands`
    (api/internal/websocket/agent_hub.go:275-290,509-536). Without it (the chart default, no Redis) a
    replica knows only its own sockets (agent_hub.go:539-540, 586-606).

    The replicas' VNC proxies meet here too: an agent's `vnc_*` messages arrive on the replica holding its
    socket, while the user's stream may be on the other one (controlplane/vnc.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.vnc_active: Dict[str, Any] = {}  # session id -> its one UI stream, on whichever replica
        self.vnc_live: Dict[str, Any] = {}  # connection id -> every open UI stream (ground truth)
        self.vnc_tunnels: Dict[Any, Any] = {}  # (agent socket id, session id) -> tunnel generations
        # one lock per agent across the replicas: Redis holds one agent:<id>:pod / :connected value, so the
        # last register or unregister wins everywhere, and agents.status must follow the same order
        self.locks: Dict[str, asyncio.Lock] = {}


class AgentHub:
    """Connections by agent_id; keeps the DB ``agents.status`` in step with them."""

    def __init__(
        self, db: Database, config: ControlPlaneConfig, routes: Optional[AgentRoutes] = None
    ) -> None:
        self.db = db
        self.config = config
        self.connections: Dict[str, AgentConnection] = {}
        self.routes = routes
        self.on_register: List[Callable[[AgentConnection], Awaitable[None]]] = []
        self.vnc_sink: Optional[Callable[[AgentConnection, dict], None]] = None  # the VNC proxy
        # the dispatcher's: commands a closed socket never wrote, back to `pending` and re-sent
        self.on_unsent: Optional[Callable[[AgentConnection, List[str]], Awaitable[None]]] = None
        self._sweeper: Optional[asyncio.Task] = None
        self._locks: Dict[str, asyncio.Lock] = routes.locks if routes is not None else {}

    def _lock(self, agent_id: str) -> asyncio.Lock:
        """Serialises this agent's register/unregister (map + agents.status) as the Go hub's mutex does:
        handleRegister/handleUnregister hold h.mutex across their UPDATE (agent_hub.go:245-270,298-326).
        Shared by the replicas that share routing, so an old socket's late `offline` on one replica can
        never land after the new socket's `online` on another."""
        lock = self._locks.get(agent_id)
        if lock is None:
            lock = self._locks[agent_id] = asyncio.Lock()
        return lock

    def is_connected(self, agent_id: Optional[str]) -> bool:
        """`IsAgentConnected`: this replica's sockets, then the shared routes (agent_hub.go:586-606)."""
        return self.get(agent_id) is not None if agent_id is not None else False

    def get(self, agent_id: str) -> Optional[AgentConnection]:
        """The agent's socket: this replica's own, else (shared routing) the one another replica holds.

        A socket already closing (replaced from another replica, its replica stopping) is not one: what
        is queued on it is never written."""
        conn = self.connections.get(agent_id)
        if conn is not None and not self._routable(conn):
            conn = None
        if conn is None and self.routes is not None:
            conn = self.routes.get(agent_id)
        return conn if conn is not None and self._routable(conn) else None

    def _routable(self, conn: AgentConnection) -> bool:
        # a draining socket's agent is about to reconnect elsewhere: with shared routing its commands wait
        # `pending` for that (replayed at register); as built the replica still uses its own socket
        return not conn.gone.is_set() and not (conn.draining and self.routes is not None)

    async def drain(self, grace: float) -> None:
        """Replica shutdown, shared routing: route no new command to this replica's sockets, and give the
        commands already written up to `grace` seconds to complete before the sockets close (an agent
        drops the `complete` it sends while reconnecting, agents/k8s-agent/main.go:786-800,852-900 write pump), so a replica
        restart loses no command."""
        if self.routes is None:
            return
        for conn in self.connections.values():
            conn.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline and any(
            c.in_flight and not c.gone.is_set() for c in self.connections.values()
        ):
            await asyncio.sleep(0.05)

    async def _socket_closed(self, conn: AgentConnection) -> None:
        unsent = conn.unsent_commands()
        if unsent and self.on_unsent is not None:
            try:
                await self.on_unsent(conn, unsent)
            except Exception:  # noqa: BLE001 - closing goes on; the rows stay `sent`
                log.exception("re-queueing %d unsent command(s) of %s failed", len(unsent), conn.agent_id)

    async def register(self, conn: AgentConnection) -> None:
        """Make ``conn`` the agent's connection, closing an older one; DB ``online``."""
        conn.on_closed = self._socket_closed
        async with self._lock(conn.agent_id):
            old = self.connections.get(conn.agent_id)
            self.connections[conn.agent_id] = conn
            if self.routes is not None:
                other = self.routes.get(conn.agent_id)
                self.routes[conn.agent_id] = conn
                if old is None and other is not None and other is not conn:
                    old = other  # the agent's older socket on another replica: replaced, as with one hub
            if old is not None:
                log.info("agent %s reconnected: closing older socket %s", conn.agent_id, old.id)
                await old.close(code=1000, message=b"replaced by a newer connection")
                if self.config.fault("orphan-sessions-on-agent-restart"):
                    # the old connection went away: its sessions lose their agent, whichever pod connects first
                    await self.db.execute(
                        "UPDATE sessions SET agent_id = NULL WHERE agent_id = %s", (conn.agent_id,)
                    )
            now = utcnow()
            await self.db.execute(
                "UPDATE agents SET status = 'online', last_heartbeat = %s, updated_at = %s WHERE agent_id = %s",
                (now, now, conn.agent_id),
            )
            await groundtruth.record(self.db, conn.agent_id, "online", "connected", conn.id)
        for callback in self.on_register:
            await callback(conn)

    async def unregister(self, conn: AgentConnection, reason: str) -> None:
        """Forget ``conn`` and mark the agent offline — only if it is still the agent's current socket.

        Keyed by connection on purpose: a dying old socket must not unregister a newer one.
        """
        async with self._lock(conn.agent_id):
            if self.connections.get(conn.agent_id) is not conn:
                return
            del self.connections[conn.agent_id]
            if self.routes is not None:
                current = self.routes.get(conn.agent_id)
                if current is conn:
                    del self.routes[conn.agent_id]
                elif current is not None:  # the agent is on another replica's socket now: not offline
                    return
            try:
                await self.db.execute(
                    "UPDATE agents SET status = 'offline', updated_at = %s WHERE agent_id = %s",
                    (utcnow(), conn.agent_id),
                )
                if self.config.fault("orphan-sessions-on-agent-restart"):
                    await self.db.execute(
                        "UPDATE sessions SET agent_id = NULL WHERE agent_id = %s", (conn.agent_id,)
                    )
            finally:
                await groundtruth.record(self.db, conn.agent_id, "offline", reason, conn.id)

    async def heartbeat(self, conn: AgentConnection, payload: object) -> None:
        """A ``heartbeat`` message: refresh LastPing and DB ``online`` (payload status is ignored)."""
        if not isinstance(payload, dict):
            log.warning("dropping heartbeat of %s: payload is not an object", conn.agent_id)
            return
        conn.last_heartbeat = time.monotonic()
        now = utcnow()
        capacity = payload.get("capacity")
        if isinstance(capacity, dict):
            await self.db.execute(
                "UPDATE agents SET status = 'online', last_heartbeat = %s, updated_at = %s, capacity = %s"
                " WHERE agent_id = %s",
                (now, now, Jsonb(capacity), conn.agent_id),
            )
        else:
            await self.db.execute(
                "UPDATE agents SET status = 'online', last_heartbeat = %s, updated_at = %s WHERE agent_id = %s",
                (now, now, conn.agent_id),
            )

    def start(self) -> None:
        if not self.config.fault("no-heartbeat-sweep"):
            self._sweeper = asyncio.create_task(self._sweep_loop(), name="agent-hub-sweeper")

    async def _sweep_loop(self) -> None:
        timers = self.config.timers
        while True:
            await asyncio.sleep(timers.sweep_interval)
            try:
                await self.sweep()
            except Exception:  # noqa: BLE001 - a DB outage must not kill the sweeper
                log.exception("stale sweep failed")

    async def sweep(self) -> None:
        """Unregister and close every connection without a heartbeat for more than the stale threshold."""
        now = time.monotonic()
        stale = [
            c
            for c in self.connections.values()
            if now - c.last_heartbeat > self.config.timers.stale_threshold
        ]
        for conn in stale:
            log.info("agent %s stale (%.1fs without heartbeat)", conn.agent_id, now - conn.last_heartbeat)
            try:
                await self.unregister(conn, "stale")
            finally:
                await conn.close(code=1001, message=b"stale")

    async def stop(self) -> None:
        """Stop sweeping and close every socket (each one is unregistered)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections.values()):
            try:
                await self.unregister(conn, "shutdown")
            except Exception:  # noqa: BLE001 - shutting down anyway
                log.exception("unregister at shutdown failed")
            await conn.close(code=1001, message=b"server shutdown")
