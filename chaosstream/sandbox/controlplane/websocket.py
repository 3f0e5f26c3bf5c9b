"""Agent WebSocket ``GET /api/v1/agents/connect?agent_id=`` (``api/internal/handlers/agent_websocket.go``).

Frames are JSON ``{"type", "timestamp", "payload"}`` (``api/internal/models/agent_protocol.go``). The read deadline (``timers.ws_read_deadline``)
is extended by pings, pongs and ``heartbeat`` messages; the server pings every ``timers.ws_ping_interval``.
Fault ``no-heartbeat-sweep`` removes the read deadline (and the hub's sweep), so a silent agent stays online.
"""

import asyncio
import contextlib
import json
import logging
import time

from aiohttp import WSMsgType, web

from chaosstream.sandbox.controlplane.agents import check_agent_key
from chaosstream.sandbox.controlplane.db import utcnow
from chaosstream.sandbox.controlplane.hub import AgentConnection
from chaosstream.sandbox.controlplane.state import CP, ControlPlane, json_error

log = logging.getLogger(__name__)
MAX_MESSAGE = 512 * 1024


async def agent_connect(request: web.Request) -> web.StreamResponse:
    cp = request.app[CP]
    agent_id = request.query.get("agent_id", "")
    denied = await check_agent_key(request, agent_id or None)
    if denied is not None:
        return denied
    if not agent_id:
        return json_error(400, "agent_id query parameter is required")
    if await cp.db.fetchrow("SELECT 1 AS x FROM agents WHERE agent_id = %s", (agent_id,)) is None:
        return json_error(404, "Agent not found", agentId=agent_id)

    ws = web.WebSocketResponse(autoping=False, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    conn = AgentConnection(
        agent_id, ws, batch_frames=cp.config.fault("batched-frames"), replica=cp.config.replica
    )
    conn.start()
    reason = "disconnected"
    pinger = asyncio.create_task(_ping_loop(cp, conn), name=f"ws-pinger-{agent_id}")
    try:
        await cp.hub.register(conn)
        reason = await _read_loop(cp, conn)
    finally:
        pinger.cancel()
        try:
            await cp.hub.unregister(conn, reason)
        finally:
            await conn.close()
    return ws


async def _ping_loop(cp: ControlPlane, conn: AgentConnection) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        while not conn.ws.closed:
            await asyncio.sleep(cp.config.timers.ws_ping_interval)
            await conn.ws.ping()


async def _read_loop(cp: ControlPlane, conn: AgentConnection) -> str:
    """Read until the socket ends; return why (used as the offline event's reason)."""
    use_deadline = not cp.config.fault("no-heartbeat-sweep")
    window = cp.config.timers.ws_read_deadline
    deadline = time.monotonic() + window
    while True:
        timeout = max(0.0, deadline - time.monotonic()) if use_deadline else None
        try:
            msg = await conn.ws.receive(timeout=timeout)
        except TimeoutError:
            log.info("agent %s: read deadline passed", conn.agent_id)
            return "read-deadline"
        if msg.type == WSMsgType.TEXT:
            if await _handle_text(cp, conn, msg.data):
                deadline = time.monotonic() + window
        elif msg.type == WSMsgType.PING:
            await conn.ws.pong(msg.data)
            deadline = time.monotonic() + window
        elif msg.type == WSMsgType.PONG:
            deadline = time.monotonic() + window
        elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return "replaced" if cp.hub.get(conn.agent_id) not in (conn, None) else "disconnected"


async def _handle_text(cp: ControlPlane, conn: AgentConnection, data: str) -> bool:
    """Handle one agent frame; return True when it was a heartbeat (which extends the read deadline)."""
    try:
        message = json.loads(data)
    except ValueError:
        log.warning("agent %s sent an unparsable frame (%d bytes)", conn.agent_id, len(data))
        return False
    if not isinstance(message, dict):
        return False
    kind, payload = message.get("type"), message.get("payload")
    try:
        if kind == "heartbeat":
            await cp.hub.heartbeat(conn, payload)
            return isinstance(payload, dict)
        if not isinstance(payload, dict):
            log.warning("agent %s: %s message without an object payload", conn.agent_id, kind)
            return False
        command_id = str(payload.get("commandId", ""))
        if kind in ("complete", "failed"):
            conn.in_flight.discard(command_id)
        if kind == "ack":
            await cp.dispatcher.on_ack(conn.agent_id, command_id)
        elif kind == "complete":
            result = payload.get("result")
            await cp.dispatcher.on_complete(
                conn.agent_id, command_id, result if isinstance(result, dict) else {}
            )
        elif kind == "failed":
            await cp.dispatcher.on_failed(conn.agent_id, command_id, str(payload.get("error", "")))
        elif kind == "status":
            await _session_status(cp, payload)
        elif kind in ("vnc_ready", "vnc_data", "vnc_error"):  # agent_websocket.go:288-295
            if cp.hub.vnc_sink is not None:
                cp.hub.vnc_sink(conn, message)
        else:
            log.debug("agent %s: ignoring message type %r", conn.agent_id, kind)
    except Exception:  # noqa: BLE001 - one bad message (or DB hiccup) must not drop the agent
        log.exception("agent %s: handling %s failed", conn.agent_id, kind)
    return False


async def _session_status(cp: ControlPlane, payload: dict) -> None:
    """``status`` → ``UPDATE sessions SET state, pod_name, url, updated_at, last_activity`` (any state)."""
    session_id, state = payload.get("sessionId"), payload.get("state")
    if not isinstance(session_id, str) or not isinstance(state, str):
        return
    metadata = payload.get("platformMetadata") if isinstance(payload.get("platformMetadata"), dict) else {}
    port = payload.get("vncPort") if isinstance(payload.get("vncPort"), int) else 0
    url = f"/api/v1/sessions/{session_id}/vnc" if payload.get("vncReady") and port > 0 else ""
    now = utcnow()
    await cp.db.execute(
        "UPDATE sessions SET state = %s, pod_name = %s, url = %s, updated_at = %s, last_activity = %s WHERE id = %s",
        (state, str(metadata.get("podName", "")), url, now, now, session_id),
    )
