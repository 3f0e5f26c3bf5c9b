"""Registration and the WebSocket connection to the control plane (``agents/k8s-agent/main.go``).

One :class:`Connection` per socket: a reader task turns frames into an inbox the agent's read loop
consumes one at a time, answers WebSocket pings and enforces the read deadline (extended only by pongs);
a pinger task pings every ``ws_ping_interval``.
"""

import asyncio
import dataclasses
import logging
import urllib.parse
from typing import Any, Callable, Dict, Optional, Union

import aiohttp
import yarl

from chaosstream.sandbox.agent.config import AgentConfig

log = logging.getLogger(__name__)

# http.Client{Timeout: 10 * time.Second}, websocket.Dialer{HandshakeTimeout: 10 * time.Second}:
# Timers.agent_io_timeout (10 s real, scaled with --timers fast); writeWait 10 s (Connection)
ACCEPTED_REGISTER_STATUSES = (200, 201, 202)


class ConnectError(RuntimeError):
    """Registration or dial failed (fatal at start, retried with backoff at runtime)."""


@dataclasses.dataclass(frozen=True)
class ConnectionLost:
    """Inbox sentinel: the socket is gone; the read loop reconnects when it reaches it."""

    reason: str


InboxItem = Union[str, ConnectionLost]


class ControlPlane:
    """HTTP registration and WebSocket dial, with the key the agent currently uses."""

    def __init__(self, config: AgentConfig, session: aiohttp.ClientSession) -> None:
        self._config = config
        self._session = session
        self.api_key = config.api_key

    def _register_body(self) -> Dict[str, Any]:
        body: Dict[str, Any] = {
            "agentId": self._config.agent_id,
            "platform": self._config.platform,
            "capacity": self._config.capacity(),
            "metadata": {"namespace": self._config.namespace, "kubernetes": True},
        }
        if self._config.region:  # omitempty in the real agent
            body["region"] = self._config.region
        return body

    async def _register_once(self) -> Dict[str, Any]:
        url = f"{self._config.http_url}/api/v1/agents/register"
        headers = {"X-Agent-API-Key": self.api_key, "Content-Type": "application/json"}
        try:
            async with self._session.post(
                url,
                json=self._register_body(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._config.timers.agent_io_timeout),
            ) as response:
                text = await response.text()
                if response.status not in ACCEPTED_REGISTER_STATUSES:
                    raise ConnectError(f"registration failed with status {response.status}: {text.strip()}")
                try:
                    body = await response.json(content_type=None)
                except ValueError as exc:
                    raise ConnectError(f"registration failed: failed to decode response: {exc}") from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ConnectError(
                f"registration failed: HTTP request failed: {exc or type(exc).__name__}"
            ) from None
        return body if isinstance(body, dict) else {}

    async def register(self) -> None:
        """POST the registration; while approval is pending re-POST every ``approval_retry`` (no dial)."""
        while True:
            body = await self._register_once()
            approval = body.get("approvalStatus", "")
            api_key = body.get("apiKey")
            if isinstance(api_key, str) and api_key and api_key != self.api_key:
                log.info("Registration returned a new API key; using it from now on")
                self.api_key = api_key
            if approval == "rejected":
                raise ConnectError("registration failed: agent registration was rejected")
            if approval != "pending":
                agent = body.get("agent") if isinstance(body.get("agent"), dict) else body
                log.info(
                    "Registered successfully: %s (status: %s, approval: %s)",
                    agent.get("agentId", self._config.agent_id),
                    agent.get("status", ""),
                    approval or "-",
                )
                return
            retry = self._config.timers.approval_retry
            log.info("Agent %s is pending approval; registering again in %.1fs", self._config.agent_id, retry)
            await asyncio.sleep(retry)

    async def dial(self) -> aiohttp.ClientWebSocketResponse:
        """Open ``/api/v1/agents/connect?agent_id=<escaped>`` with the API key header."""
        escaped = urllib.parse.quote_plus(self._config.agent_id)  # Go url.QueryEscape
        url = yarl.URL(
            f"{self._config.control_plane_url}/api/v1/agents/connect?agent_id={escaped}", encoded=True
        )
        try:
            async with asyncio.timeout(self._config.timers.agent_io_timeout):
                return await self._session.ws_connect(
                    url,
                    headers={"X-Agent-API-Key": self.api_key},
                    autoping=False,  # pings and pongs are handled by Connection (read deadline)
                    timeout=aiohttp.ClientWSTimeout(ws_close=1.0),
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ConnectError(
                f"WebSocket connection failed: WebSocket dial failed: {exc or type(exc).__name__}"
            ) from None

    async def connect(self) -> aiohttp.ClientWebSocketResponse:
        """Register, then dial; one attempt of the real agent's Connect()."""
        log.info("Connecting to Control Plane...")
        await self.register()
        ws = await self.dial()
        log.info("Connected to Control Plane: %s", self._config.control_plane_url)
        return ws


class Connection:
    """One live WebSocket with its reader and pinger tasks."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        ping_interval: float,
        read_deadline: float,
        write_wait: float = 10.0,
        fast_path: Optional[Callable[[str], bool]] = None,
    ) -> None:
        self.ws = ws
        self._fast_path = fast_path  # takes a frame off the inbox when it returns True (intended VNC)
        self._write_wait = write_wait
        self.inbox: asyncio.Queue[InboxItem] = asyncio.Queue()
        self._ping_interval = ping_interval
        self._read_deadline = read_deadline
        self._tasks = [
            asyncio.create_task(self._read(), name="agent-ws-reader"),
            asyncio.create_task(self._ping(), name="agent-ws-pinger"),
        ]

    @property
    def alive(self) -> bool:
        return not self.ws.closed

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._read_deadline
        reason = "closed"
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError
                msg = await self.ws.receive(timeout=remaining)
                if msg.type == aiohttp.WSMsgType.TEXT:
                    if self._fast_path is None or not self._fast_path(msg.data):
                        self.inbox.put_nowait(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self.inbox.put_nowait(msg.data.decode("utf-8", "replace"))
                elif msg.type == aiohttp.WSMsgType.PING:
                    await self.ws.pong(msg.data)
                elif msg.type == aiohttp.WSMsgType.PONG:
                    deadline = loop.time() + self._read_deadline  # only pongs extend the deadline
                elif msg.type == aiohttp.WSMsgType.CLOSE:
                    reason = (
                        f"server closed the socket (code {msg.data}{', ' + msg.extra if msg.extra else ''})"
                    )
                    break
                else:  # CLOSING, CLOSED, ERROR
                    reason = f"socket {msg.type.name.lower()}" + (f": {msg.data}" if msg.data else "")
                    break
        except TimeoutError:
            reason = f"read deadline exceeded (no pong for {self._read_deadline:.1f}s)"
        except asyncio.CancelledError:
            reason = "cancelled"
            raise
        except Exception as exc:  # any other read failure is a read error, like ReadMessage's err
            reason = f"read error: {exc}"
        finally:
            self.inbox.put_nowait(ConnectionLost(reason))

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self._ping_interval)
            if self.ws.closed:
                return
            try:
                async with asyncio.timeout(self._write_wait):
                    await self.ws.ping()
            except Exception as exc:  # baseline: a ping error does not kill the write path
                log.warning("Ping error: %s", exc)

    async def send(self, text: str) -> None:
        async with asyncio.timeout(self._write_wait):
            await self.ws.send_str(text)

    async def close(self, timeout: float = 0.5) -> None:
        """Stop the tasks and send a close frame (without waiting long for the peer's answer)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if not self.ws.closed:
            try:
                async with asyncio.timeout(timeout):
                    await self.ws.close()
            except Exception as exc:
                log.debug("Close did not finish cleanly: %s", exc)
