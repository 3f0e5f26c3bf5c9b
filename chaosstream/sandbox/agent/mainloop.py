"""The agent's main loop: connect, heartbeat, read loop (one command at a time), reconnect.

As ``agents/k8s-agent/main.go`` does; see docs/streamspace.md#3-agent-and-control-plane-protocol.
"""

import asyncio
import concurrent.futures
import json
import logging
from typing import Any, Dict, List, Optional

import aiohttp

from chaosstream.sandbox.agent import protocol
from chaosstream.sandbox.agent.config import AgentConfig
from chaosstream.sandbox.agent.connection import ConnectError, Connection, ConnectionLost, ControlPlane
from chaosstream.sandbox.agent.handlers import CommandError, CommandHandlers
from chaosstream.sandbox.agent.vnc import VncTunnels
from chaosstream.sandbox.agent.workloads import Workloads

log = logging.getLogger(__name__)

SEND_TIMEOUT = 5.0  # sendMessage gives up after 5 s
WRITE_QUEUE_SIZE = 256


def _message_type(text: str) -> str:
    try:
        return str(json.loads(text).get("type", "?"))
    except (ValueError, AttributeError):
        return "?"


class StartupError(RuntimeError):
    """The first register/dial failed: fatal, like log.Fatalf, so the kubelet restarts the pod."""


class Agent:
    """A StreamSpace k8s-agent: one process, one control-plane connection at a time."""

    def __init__(
        self, config: AgentConfig, workloads: Workloads, executor: concurrent.futures.Executor
    ) -> None:
        self.config = config
        self._conn: Optional[Connection] = None
        self._outbox: asyncio.Queue[str] = asyncio.Queue(WRITE_QUEUE_SIZE)
        self.vnc = VncTunnels(config, workloads, self.send, executor)
        self._handlers = CommandHandlers(config, workloads, self.send, executor, vnc=self.vnc)
        self._tasks: List[asyncio.Task] = []
        self._session: Optional[aiohttp.ClientSession] = None
        self._slow_reconnect = "slow-reconnect" in config.faults

    # -- sending ---------------------------------------------------------------------------------------
    async def send(self, text: str) -> None:
        """Queue one message for the writer (the single writer of the socket)."""
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await self._outbox.put(text)
        except TimeoutError:
            log.error("Failed to send message: write channel send timeout (channel may be full or blocked)")

    async def _write_loop(self) -> None:
        """Write queued messages to whichever socket is current.

        Baseline: unlike the real agent's write pump (which returns on its first error and is never
        restarted, docs/streamspace.md#37-agent-reconnection), this loop survives write errors, so the write path works after a reconnect.
        Messages queued while disconnected are dropped, as they would be on a dead socket.
        """
        while True:
            text = await self._outbox.get()
            conn = self._conn
            if conn is None or not conn.alive:
                log.warning("Dropped %s message (not connected)", _message_type(text))
                continue
            try:
                await conn.send(text)
            except Exception as exc:
                log.warning("Write error (message dropped): %s", exc or type(exc).__name__)

    async def _heartbeat_loop(self) -> None:
        """Send a heartbeat every interval; the first one is one interval after the first connection.

        Faithful to the real agent: a ticker started once after Connect(), not reset by reconnects.
        """
        interval = self.config.heartbeat_interval
        loop = asyncio.get_running_loop()
        log.info("Starting heartbeat sender (interval: %.3gs)", interval)
        next_tick = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            await self.send(protocol.heartbeat(self.config.capacity()))
            next_tick += interval
            if next_tick < loop.time():  # a Go ticker drops ticks it could not deliver
                next_tick = loop.time() + interval

    # -- connecting ------------------------------------------------------------------------------------
    def _attach(self, ws: aiohttp.ClientWebSocketResponse) -> Connection:
        timers = self.config.timers
        self._conn = Connection(
            ws, timers.ws_ping_interval, timers.ws_read_deadline, fast_path=self.vnc.fast_path
        )
        log.info("WebSocket connected")
        return self._conn

    async def _slow_reconnect_wait(self) -> None:
        wait = sum(self.config.timers.reconnect_backoff)
        log.info("Fault slow-reconnect: waiting %.1fs (whole backoff list) before connecting", wait)
        await asyncio.sleep(wait)

    async def _reconnect(self, control_plane: ControlPlane, reason: str) -> Connection:
        """Walk the backoff list, one register + dial per attempt; start over when it is exhausted."""
        log.warning("Connection lost (%s), attempting to reconnect...", reason)
        old, self._conn = self._conn, None
        if old is not None:
            await old.close()
        if not self.vnc.as_built:
            await self.vnc.close_all()  # their streams died with the socket (as built they stay open)
        backoff = list(self.config.timers.reconnect_backoff)
        rounds = 0
        while True:
            rounds += 1
            for attempt, delay in enumerate(backoff, start=1):
                wait = sum(backoff) if self._slow_reconnect else delay
                log.info(
                    "Reconnect attempt %d/%d (waiting %.2fs)%s",
                    attempt,
                    len(backoff),
                    wait,
                    " [fault slow-reconnect]" if self._slow_reconnect else "",
                )
                await asyncio.sleep(wait)
                try:
                    ws = await control_plane.connect()
                except ConnectError as exc:
                    log.warning("Reconnect attempt %d failed: %s", attempt, exc)
                    continue
                conn = self._attach(ws)
                log.info("Reconnected successfully (round %d, attempt %d)", rounds, attempt)
                return conn
            # The real Reconnect() returns an error here, which the read loop ignores: it starts over.
            log.warning(
                "Reconnection failed after %d attempts; starting the backoff list again", len(backoff)
            )

    # -- reading ---------------------------------------------------------------------------------------
    async def _handle_frame(self, data: str) -> None:
        try:
            message = protocol.parse_frame(data)
        except protocol.ProtocolError as exc:
            log.error("Failed to handle message: %s (frame of %d bytes dropped)", exc, len(data))
            return
        kind = message.get("type", "")
        payload: Any = message.get("payload")
        if kind == "command":
            await self._handle_command(payload)
        elif kind == "ping":
            log.info("Received ping, sending pong")
            await self.send(protocol.pong())
        elif kind == "shutdown":
            reason = payload.get("reason", "") if isinstance(payload, dict) else ""
            log.warning("Shutdown requested by Control Plane (%s): ignored by the sandbox agent", reason)
        elif kind in ("vnc_data", "vnc_close"):
            await self.vnc.handle(kind, payload)  # in the read loop, between commands (as built)
        else:
            log.info("Unknown message type: %s", kind)

    async def _handle_command(self, payload: Any) -> None:
        """ack first, execute, then exactly one complete or failed — inside the read loop."""
        try:
            command = protocol.parse_command(payload)
        except protocol.ProtocolError as exc:
            log.error("Failed to handle message: %s", exc)
            return
        log.info("Received command: %s (action: %s)", command.command_id, command.action)
        await self.send(protocol.ack(command.command_id))
        try:
            result: Dict[str, Any] = await self._handlers.handle(command.action, command.payload)
        except CommandError as exc:
            log.error("Command %s failed: %s", command.command_id, exc)
            await self.send(protocol.failed(command.command_id, str(exc)))
            return
        except Exception as exc:  # a bug in a handler must not kill the read loop
            log.exception("Command %s failed unexpectedly", command.command_id)
            await self.send(protocol.failed(command.command_id, f"internal error: {exc}"))
            return
        log.info("Command %s completed successfully", command.command_id)
        await self.send(protocol.complete(command.command_id, result))

    # -- lifecycle -------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect (fatal on failure), then read forever; never returns on its own once connected."""
        cfg = self.config
        log.info(
            "Starting agent: %s (platform: %s, region: %s, namespace: %s, faults: %s)",
            cfg.agent_id,
            cfg.platform,
            cfg.region or "-",
            cfg.namespace,
            ",".join(sorted(cfg.faults)) or "none",
        )
        self._session = aiohttp.ClientSession()
        control_plane = ControlPlane(cfg, self._session)
        if self._slow_reconnect:
            await self._slow_reconnect_wait()
        try:
            ws = await control_plane.connect()
        except ConnectError as exc:
            raise StartupError(str(exc)) from None
        conn = self._attach(ws)
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="agent-writer"),
            asyncio.create_task(self._heartbeat_loop(), name="agent-heartbeat"),
        ]
        while True:
            item = await conn.inbox.get()
            if isinstance(item, ConnectionLost):
                conn = await self._reconnect(control_plane, item.reason)
                continue
            await self._handle_frame(item)

    async def shutdown(self) -> None:
        """Close the socket with a close frame and release everything (SIGTERM/SIGINT)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.vnc.close_all()  # main.go:220-224
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
            log.info("WebSocket closed")
        if self._session is not None:
            await self._session.close()
