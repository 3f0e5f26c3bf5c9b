"""The VNC proxy ``GET /api/v1/vnc/:sessionId`` (``api/internal/handlers/vnc_proxy.go``).

Wire, as the real handler speaks it (both profiles):

* Auth (``api/internal/auth/middleware.go:155-285``): on ``/api/v1/vnc/`` the JWT comes from ``?token=``
  first (a query token also sets the cookie ``streamspace_proxy_token``), then that cookie, then
  ``Authorization: Bearer``. A WebSocket upgrade that fails authentication gets a bare 401 (no body).
* Before the upgrade (vnc_proxy.go:136-185): unknown session 404 ``{"error":"Session not found"}``; another
  user's session 403 ``{"error":"Access denied"}`` (admins too: the owner check has no admin bypass);
  not ``running`` 409 ``{"error":"Session is not running (state: S)"}``; no agent 503 ``{"error":"Session
  has no agent assigned"}``; agent not connected 503 ``{"error":"Agent A is not connected"}``.
* One connection per session (vnc_proxy.go:232-244): a new one closes the old one's socket.
* Frames: every agent ``vnc_data`` of the session goes to the UI as one TEXT frame holding the agent's
  base64 string as is (vnc_proxy.go:442); every TEXT (or BINARY) frame from the UI is relayed as the
  ``data`` of a ``vnc_data`` unchanged, so the UI must send base64 text (vnc_proxy.go:463-473).
* The server pings every ``ws_ping_interval`` (54 s) and drops a UI silent for ``vnc_pong_wait`` (120 s);
  it answers the UI's pings (vnc_proxy.go:309-358).
* The proxy closes the UI socket without a close frame (gorilla ``Conn.Close``: the client sees 1006)
  when the agent reports ``vnc_error`` for the session, when it is replaced, on a relay error; when the UI
  leaves the proxy sends ``vnc_close {sessionId, reason:"client_disconnect"}`` to the agent
  (vnc_proxy.go:287-307).

Relay, ``Profile.vnc_proxy_as_built``:

* as built: the relay reads the agent connection's single ``Receive`` channel (buffer 256, filled by the
  hub's reader, full → dropped, agent_websocket.go:288-295) — the same channel every other relay of that
  agent reads, so concurrent streams of one agent take each other's messages and drop them
  (vnc_proxy.go:410-446); ``vnc_ready`` is ignored; ``Receive`` is never closed (agent_hub.go:298-316
  closes ``Send`` only), so when the agent's socket dies the UI socket stays open and silent until the UI
  sends something (then "agent not connected" ends it); a replaced connection's cleanup removes the new
  one's registration and sends ``vnc_close``; the UI→agent path looks the agent up on every frame.
* intended: messages are routed to the session's stream; on connect the proxy asks the agent for a fresh
  tunnel (an empty ``vnc_data``, see agent/vnc.py) and relays only that tunnel's messages (``Tunnels``
  tells them from an older tunnel's, whose bytes would corrupt the new RFB stream); the UI socket is
  closed when the agent's socket dies, so the client reconnects.

Ground truth (not StreamSpace): one ``sandbox_vnc_streams`` row per UI connection — opened, first and last
bytes written to the UI, closed and why, byte counts — served by ``GET /sandbox/v1/streams``.
"""

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import secrets
import time
from typing import Any, Dict, Optional, Tuple

from aiohttp import WSMsgType, web

from chaosstream.sandbox.controlplane.auth import decode_jwt
from chaosstream.sandbox.controlplane.db import rfc3339, utcnow
from chaosstream.sandbox.controlplane.hub import AgentConnection
from chaosstream.sandbox.controlplane.sandboxapi import ground_truth_filter
from chaosstream.sandbox.controlplane.state import CP, ControlPlane, json_error

__all__ = ["VncProxy", "VNC", "vnc_connect", "list_streams"]

log = logging.getLogger(__name__)

COOKIE = "streamspace_proxy_token"
COOKIE_MAX_AGE = 900
HTTP_PROTOCOLS = ("selkies", "guacamole", "kasm")
INBOX = 256  # per stream (intended); the as-built relay shares the agent's Receive channel
MAX_UI_MESSAGE = 32 * 1024 * 1024


@dataclasses.dataclass
class Stream:
    """One UI connection: its socket, its relay state and its ground-truth record."""

    id: str
    session_id: str
    agent_id: str
    user_id: str
    ws: web.WebSocketResponse
    transport: Any
    agent: Optional[AgentConnection] = None
    inbox: "asyncio.Queue[dict]" = dataclasses.field(default_factory=lambda: asyncio.Queue(INBOX))
    generation: int = 0  # intended: which of the session's tunnel requests on its agent socket is ours
    ready: bool = False
    close_sent: bool = False  # vnc_close went to the agent for this stream
    opened_at: dt.datetime = dataclasses.field(default_factory=utcnow)
    first_bytes_at: Optional[dt.datetime] = None
    last_bytes_at: Optional[dt.datetime] = None
    closed_at: Optional[dt.datetime] = None
    close_reason: str = ""
    bytes_to_client: int = 0
    frames_to_client: int = 0
    bytes_from_client: int = 0

    def abort(self) -> None:
        """Close the socket the way gorilla's ``Conn.Close`` does: no close frame."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def json(self) -> Dict[str, Any]:
        return {
            "connectionId": self.id,
            "sessionId": self.session_id,
            "agentId": self.agent_id,
            "userId": self.user_id,
            "openedAt": rfc3339(self.opened_at),
            "firstBytesAt": rfc3339(self.first_bytes_at),
            "lastBytesAt": rfc3339(self.last_bytes_at),
            "closedAt": rfc3339(self.closed_at),
            "closeReason": self.close_reason,
            "bytesToClient": self.bytes_to_client,
            "framesToClient": self.frames_to_client,
            "bytesFromClient": self.bytes_from_client,
        }


@dataclasses.dataclass
class Tunnels:
    """Intended: one session's tunnel requests on one agent socket. The agent answers each request with
    one ``vnc_ready`` or ``vnc_error``, in order, and ends every open tunnel with exactly one more
    ``vnc_error`` (agent/vnc.py), so every message can be tagged with the request it belongs to."""

    requested: int = 0
    answered: int = 0
    open: bool = False

    def tag(self, kind: str) -> int:
        if kind == "vnc_ready":
            self.answered += 1
            self.open = True
        elif kind == "vnc_error":
            if self.open:
                self.open = False  # the open tunnel ended
            else:
                self.answered += 1  # a request failed
        return self.answered


def _rfb_bytes(b64: str) -> int:
    """How many RFB bytes a base64 string carries."""
    return len(b64) * 3 // 4 - b64[-2:].count("=") if b64 else 0


def _message(kind: str, payload: Dict[str, Any]) -> Dict[str, Any]:
    return {"type": kind, "timestamp": rfc3339(utcnow()), "payload": payload}


class VncProxy:
    """UI streams of one control plane; the hub hands it the agents' ``vnc_*`` messages."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.as_built = cp.config.profile.vnc_proxy_as_built
        # Replicas sharing agent routing (intended) share the session → stream map and the tunnel counts:
        # one connection per session across the API, and an agent's frames reach the stream whichever
        # replica holds it. As built (no Redis) each replica has its own (vnc_proxy.go:72-73).
        routes = cp.hub.routes
        self.active: Dict[str, Stream] = routes.vnc_active if routes is not None else {}  # session → stream
        self.live: Dict[str, Stream] = {}  # connection id → every open stream of this replica (ground truth)
        # the open streams of every replica sharing routing, for the ground truth's live values
        self.live_anywhere: Dict[str, Stream] = routes.vnc_live if routes is not None else self.live
        # (agent socket id, session id) → the tunnel generations of that socket, intended
        self.tunnels: Dict[Tuple[str, str], Tunnels] = routes.vnc_tunnels if routes is not None else {}
        self._tasks: set = set()

    # -- agent → proxy ---------------------------------------------------------------------------------
    def agent_message(self, conn: AgentConnection, message: Dict[str, Any]) -> None:
        """A ``vnc_ready``/``vnc_data``/``vnc_error`` from an agent's socket (agent_websocket.go:288-295)."""
        if self.as_built:
            try:
                conn.receive.put_nowait(message)
            except asyncio.QueueFull:
                log.warning("VNC receive buffer full for agent %s", conn.agent_id)
            return
        payload = message.get("payload")
        session_id = payload.get("sessionId") if isinstance(payload, dict) else None
        if not isinstance(session_id, str):
            return
        generation = self.tunnels.setdefault((conn.id, session_id), Tunnels()).tag(str(message.get("type")))
        stream = self.active.get(session_id)
        if stream is None or stream.agent is not conn or stream.generation != generation:
            return  # nobody watches this session, or it is an older tunnel's (or an older socket's)
        try:
            stream.inbox.put_nowait(message)
        except asyncio.QueueFull:  # dropping a frame would corrupt the RFB stream: end it instead
            log.warning("VNC buffer full for session %s: closing its stream", session_id)
            stream.close_reason = stream.close_reason or "relay buffer full (the client reads too slowly)"
            stream.abort()

    # -- ground truth ----------------------------------------------------------------------------------
    def _persist(self, query: str, params: tuple) -> None:
        async def run() -> None:
            try:
                await self.cp.db.execute(query, params)
            except Exception:  # noqa: BLE001 - ground truth is best effort
                log.exception("could not record VNC stream event")

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record_open(self, stream: Stream) -> None:
        with contextlib.suppress(Exception):
            await self.cp.db.execute(
                "INSERT INTO sandbox_vnc_streams (connection_id, session_id, agent_id, user_id, opened_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                (stream.id, stream.session_id, stream.agent_id, stream.user_id, stream.opened_at),
            )

    async def _record_close(self, stream: Stream) -> None:
        if stream.closed_at is not None:
            return
        stream.closed_at = utcnow()
        self.live.pop(stream.id, None)
        self.live_anywhere.pop(stream.id, None)
        with contextlib.suppress(Exception):
            await self.cp.db.execute(
                "UPDATE sandbox_vnc_streams SET first_bytes_at = %s, last_bytes_at = %s, closed_at = %s,"
                " close_reason = %s, bytes_to_client = %s, frames_to_client = %s, bytes_from_client = %s"
                " WHERE connection_id = %s",
                (
                    stream.first_bytes_at,
                    stream.last_bytes_at,
                    stream.closed_at,
                    stream.close_reason[:255],
                    stream.bytes_to_client,
                    stream.frames_to_client,
                    stream.bytes_from_client,
                    stream.id,
                ),
            )

    async def _to_ui(self, stream: Stream, data: str) -> None:
        await stream.ws.send_str(data)
        now = utcnow()
        if stream.first_bytes_at is None:
            stream.first_bytes_at = now
            self._persist(
                "UPDATE sandbox_vnc_streams SET first_bytes_at = %s WHERE connection_id = %s",
                (now, stream.id),
            )
        stream.last_bytes_at = now
        stream.bytes_to_client += _rfb_bytes(data)
        stream.frames_to_client += 1

    # -- the endpoint ----------------------------------------------------------------------------------
    async def connect(self, request: web.Request) -> web.StreamResponse:
        cp = self.cp
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        is_ws = upgrade and "upgrade" in request.headers.get("Connection", "").lower()
        query_token = request.query.get("token", "")
        token = query_token or request.cookies.get(COOKIE, "")
        if not token:
            header = request.headers.get("Authorization", "")
            if not header:
                return web.Response(status=401) if is_ws else json_error(401, "Authorization header required")
            scheme, _, rest = header.partition(" ")
            if scheme != "Bearer" or not rest:
                if is_ws:
                    return web.Response(status=401)
                return json_error(401, "Invalid authorization header format. Use: Bearer <token>")
            token = rest
        try:
            claims = decode_jwt(token, cp.config.jwt_secret)
        except ValueError as exc:
            return (
                web.Response(status=401)
                if is_ws
                else json_error(401, "Invalid or expired token", message=str(exc))
            )
        user_id = str(claims.get("user_id", ""))
        session_id = request.match_info["sessionId"]
        row = await cp.db.fetchrow(
            "SELECT agent_id, state, user_id, COALESCE(streaming_protocol, 'vnc') AS protocol,"
            " COALESCE(streaming_port, 5900) AS port, COALESCE(streaming_path, '') AS path, url"
            " FROM sessions WHERE id = %s",
            (session_id,),
        )
        # as built a NULL agent_id/state/user_id fails Go's Scan into a string: "Session not found"
        nulls = row is not None and any(row[k] is None for k in ("agent_id", "state", "user_id"))
        if row is None or (nulls and self.as_built):
            return self._with_cookie(json_error(404, "Session not found"), query_token)
        agent_id, state = row["agent_id"] or "", row["state"] or ""
        if (row["user_id"] or "") != user_id:
            return self._with_cookie(json_error(403, "Access denied"), query_token)
        if state != "running":
            return self._with_cookie(json_error(409, f"Session is not running (state: {state})"), query_token)
        if not agent_id:
            return self._with_cookie(json_error(503, "Session has no agent assigned"), query_token)
        if not cp.hub.is_connected(agent_id):
            return self._with_cookie(json_error(503, f"Agent {agent_id} is not connected"), query_token)
        if row["protocol"] in HTTP_PROTOCOLS:
            return self._with_cookie(self._http_session(session_id, row), query_token)

        old = self.active.pop(session_id, None)
        if old is not None:
            log.info("Closing existing VNC connection for session %s", session_id)
            old.close_reason = old.close_reason or "replaced by a newer connection"
            if not self.as_built:
                old.close_sent = True
                if old.agent is not None:  # before the new stream's request, so its tunnel survives
                    old.agent.send(
                        _message("vnc_close", {"sessionId": session_id, "reason": "client_disconnect"})
                    )
            old.abort()
        ws = web.WebSocketResponse(autoping=False, max_msg_size=MAX_UI_MESSAGE)
        if not ws.can_prepare(request).ok:
            return web.Response(
                status=400,
                text="Bad Request\nwebsocket: the client is not using the websocket protocol: "
                "'upgrade' token not found in 'Connection' header\n",
            )
        if query_token:
            ws.set_cookie(COOKIE, query_token, max_age=COOKIE_MAX_AGE, path="/api/v1")
        transport = request.transport
        await ws.prepare(request)
        stream = Stream(secrets.token_hex(8), session_id, agent_id, user_id, ws, transport)
        self.active[session_id] = stream
        self.live[stream.id] = self.live_anywhere[stream.id] = stream
        await self._record_open(stream)
        now = utcnow()
        with contextlib.suppress(Exception):
            await cp.db.execute(
                "UPDATE sessions SET active_connections = active_connections + 1, last_connection = %s,"
                " last_activity = %s WHERE id = %s",
                (now, now, session_id),
            )
        try:
            stream.close_reason = await self._relay(stream) or stream.close_reason
        except asyncio.CancelledError:
            stream.close_reason = stream.close_reason or "server shutdown"
            raise
        finally:
            await self._cleanup(stream)
        return ws

    @staticmethod
    def _with_cookie(response: web.Response, query_token: str) -> web.Response:
        if query_token:  # the middleware sets it before the handler runs
            response.set_cookie(COOKIE, query_token, max_age=COOKIE_MAX_AGE, path="/api/v1")
        return response

    @staticmethod
    def _http_session(session_id: str, row: Any) -> web.Response:
        """Selkies/Kasm/Guacamole sessions get access information, not a relay (vnc_proxy.go:190-227)."""
        if not row["url"]:
            return web.json_response(
                {
                    "error": "Session URL not yet available",
                    "message": "The agent is still starting the session. Please wait and try again.",
                    "session_id": session_id,
                    "protocol": row["protocol"],
                    "retry_after": 5,
                },
                status=202,
            )
        return web.json_response(
            {
                "type": "http_session",
                "session_id": session_id,
                "protocol": row["protocol"],
                "url": row["url"],
                "port": row["port"],
                "path": row["path"],
                "message": "Access this session via the provided URL",
            }
        )

    async def _cleanup(self, stream: Stream) -> None:
        """vnc_proxy.go:287-307: close the socket, forget it, count it, tell the agent."""
        stream.abort()
        if self.as_built:
            self.active.pop(stream.session_id, None)  # whichever connection holds the key
        elif self.active.get(stream.session_id) is stream:
            del self.active[stream.session_id]
            # intended: before any await, so a reconnecting UI's tunnel request comes after this close
            self._close_tunnel(stream)
        with contextlib.suppress(Exception):
            await self.cp.db.execute(
                "UPDATE sessions SET active_connections = active_connections - 1, last_disconnect = %s"
                " WHERE id = %s AND active_connections > 0",
                (utcnow(), stream.session_id),
            )
        if self.as_built:
            self._close_tunnel(stream)  # vnc_proxy.go:304, after the DB update
        await self._record_close(stream)

    def _close_tunnel(self, stream: Stream) -> None:
        """``vnc_close {sessionId, reason: "client_disconnect"}`` to the agent, once per stream."""
        if stream.close_sent:
            return  # intended: the newer connection sent it already
        stream.close_sent = True
        conn = self.cp.hub.get(stream.agent_id)
        if conn is not None:
            conn.send(_message("vnc_close", {"sessionId": stream.session_id, "reason": "client_disconnect"}))

    # -- relaying --------------------------------------------------------------------------------------
    def _send_to_agent(self, stream: Stream, data: str) -> Optional[str]:
        """A ``vnc_data`` to the agent; the reason the stream must end, or None."""
        conn = self.cp.hub.get(stream.agent_id) if self.as_built else stream.agent
        if conn is None or (not self.as_built and self.cp.hub.get(stream.agent_id) is not conn):
            return f"agent {stream.agent_id} not connected"
        if not conn.send(_message("vnc_data", {"sessionId": stream.session_id, "data": data})):
            return f"agent {stream.agent_id} send buffer full"
        return None

    async def _from_ui(self, stream: Stream) -> str:
        """UI frames to the agent until the UI leaves or stays silent past the pong wait."""
        ws, pong_wait = stream.ws, self.cp.config.timers.vnc_pong_wait
        while True:
            try:
                msg = await ws.receive(timeout=pong_wait)
            except TimeoutError:
                return "no pong from the client"
            if msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                data = msg.data if msg.type == WSMsgType.TEXT else msg.data.decode("utf-8", "replace")
                stream.bytes_from_client += _rfb_bytes(data)
                reason = self._send_to_agent(stream, data)
                if reason:
                    return reason
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return stream.close_reason or "client disconnected"

    async def _ping(self, stream: Stream) -> str:
        timers = self.cp.config.timers
        next_activity = time.monotonic() + timers.heartbeat_interval  # vncActivityHeartbeat 30 s
        while True:
            await asyncio.sleep(timers.ws_ping_interval)
            try:
                await asyncio.wait_for(stream.ws.ping(), 10.0)
            except Exception as exc:  # noqa: BLE001 - any ping error ends the relay, as in Go
                return f"ping error: {exc or type(exc).__name__}"
            if time.monotonic() >= next_activity:
                next_activity = time.monotonic() + timers.heartbeat_interval
                with contextlib.suppress(Exception):
                    await self.cp.db.execute(
                        "UPDATE sessions SET last_activity = %s WHERE id = %s", (utcnow(), stream.session_id)
                    )

    async def _relay(self, stream: Stream) -> str:
        hub = self.cp.hub
        stream.agent = hub.get(stream.agent_id)
        if stream.agent is None:
            return f"agent {stream.agent_id} connection lost"
        if not self.as_built:
            tunnels = self.tunnels.setdefault((stream.agent.id, stream.session_id), Tunnels())
            tunnels.requested += 1
            stream.generation = tunnels.requested
            reason = self._send_to_agent(stream, "")  # intended: ask for a fresh tunnel (agent/vnc.py)
            if reason:
                return reason
        side = [
            asyncio.create_task(self._from_ui(stream), name=f"vnc-ui-{stream.id}"),
            asyncio.create_task(self._ping(stream), name=f"vnc-ping-{stream.id}"),
        ]
        if not self.as_built:
            side.append(asyncio.create_task(self._agent_gone(stream.agent), name=f"vnc-agent-{stream.id}"))
        source = stream.agent.receive if self.as_built else stream.inbox
        getter: Optional[asyncio.Task] = None
        try:
            while True:
                if getter is None:
                    getter = asyncio.create_task(source.get())
                done, _ = await asyncio.wait([getter, *side], return_when=asyncio.FIRST_COMPLETED)
                for task in side:
                    if task in done:
                        return task.result()
                message, getter = getter.result(), None
                reason = await self._agent_message(stream, message)
                if reason:
                    return reason
        finally:
            for task in [*side, *([getter] if getter is not None else [])]:
                task.cancel()

    async def _agent_gone(self, conn: AgentConnection) -> str:
        await conn.gone.wait()
        for key in [k for k in self.tunnels if k[0] == conn.id]:
            del self.tunnels[key]
        return f"agent {conn.agent_id} disconnected"

    async def _agent_message(self, stream: Stream, message: Dict[str, Any]) -> Optional[str]:
        kind, payload = message.get("type"), message.get("payload")
        if not isinstance(payload, dict):
            return None
        if payload.get("sessionId") != stream.session_id:
            return None  # as built: another session's message, taken from its relay and lost
        if kind == "vnc_ready":
            stream.ready = True
        elif kind == "vnc_data":
            if self.as_built or stream.ready:
                data = payload.get("data")
                if isinstance(data, str):
                    try:
                        await self._to_ui(stream, data)
                    except (ConnectionError, RuntimeError) as exc:
                        return f"write error: {exc}"
        elif kind == "vnc_error":
            return f"vnc_error: {payload.get('error', '')}"
        return None

    async def shutdown(self) -> None:
        """The API is going away: every UI socket drops (as a pod's death drops them)."""
        for stream in list(self.live.values()):
            stream.close_reason = stream.close_reason or "server shutdown"
            stream.abort()
            await self._record_close(stream)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


VNC: web.AppKey[VncProxy] = web.AppKey("vnc", VncProxy)


async def vnc_connect(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/vnc/:sessionId?token=<JWT>`` (WebSocket); see the module docstring."""
    return await request.app[VNC].connect(request)


async def list_streams(request: web.Request) -> web.Response:
    """``GET /sandbox/v1/streams[?session_id=&since=<RFC3339>]`` → ``{streams:[...], total}``: the
    ground truth of every UI connection (live values for open ones), ordered by ``openedAt``."""
    cp, proxy = request.app[CP], request.app[VNC]
    where = ground_truth_filter(request, "session_id", "(closed_at IS NULL OR closed_at >= %s)")
    if isinstance(where, web.Response):
        return where
    query, params = "SELECT * FROM sandbox_vnc_streams" + where[0], where[1]
    rows = await cp.db.fetch(query + " ORDER BY opened_at, connection_id", params)
    streams = []
    for r in rows:
        live = proxy.live_anywhere.get(r["connection_id"])
        if live is not None:
            streams.append(live.json())
            continue
        streams.append(
            {
                "connectionId": r["connection_id"],
                "sessionId": r["session_id"],
                "agentId": r["agent_id"] or "",
                "userId": r["user_id"] or "",
                "openedAt": rfc3339(r["opened_at"]),
                "firstBytesAt": rfc3339(r["first_bytes_at"]),
                "lastBytesAt": rfc3339(r["last_bytes_at"]),
                "closedAt": rfc3339(r["closed_at"]),
                "closeReason": r["close_reason"] or "",
                "bytesToClient": int(r["bytes_to_client"] or 0),
                "framesToClient": int(r["frames_to_client"] or 0),
                "bytesFromClient": int(r["bytes_from_client"] or 0),
            }
        )
    return web.json_response({"streams": streams, "total": len(streams)})
