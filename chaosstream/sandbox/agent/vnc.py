"""VNC tunnels: the agent's port-forwards to session pods and the ``vnc_*`` messages that carry them.

As ``agents/k8s-agent/agent_vnc_tunnel.go`` and ``agent_vnc_handler.go``: one tunnel per session, a
port-forward (here the WebSocket ``pods/portforward``, ``v4.channel.k8s.io``, through aiohttp: kubeapi.py
says why not the python client) to the pod's VNC port (the port named ``vnc``, else 3000); ``vnc_ready
{sessionId, vncPort, podName}`` once it is open; pod bytes go to the control plane as ``vnc_data {sessionId,
data}`` with ``data`` standard base64 (32 KiB reads), and ``vnc_data`` from the control plane is decoded and
written to the pod; ``vnc_close`` and ``stop_session`` close the tunnel; a tunnel that cannot open is
reported as ``vnc_error {sessionId, error}``.

Two behaviours (``Profile.vnc_tunnel_as_built``):

* as built: the tunnel opens once, ``vnc_tunnel_delay`` (2 s) after a successful ``start_session``, in the
  background (agent_vnc_handler.go:150-172); nothing opens one later (no on-demand open, none after a wake or
  an agent restart), so after the first ``vnc_close`` (every UI disconnect) the session has no tunnel and
  ``vnc_data`` only logs "tunnel not found" (agent_vnc_tunnel.go:189-196). A port-forward that cannot be
  dialled never signals ready, so the error is "timeout waiting for port-forward" after
  ``vnc_ready_timeout`` (30 s, agent_vnc_tunnel.go:131-138). A pod-side EOF ends the tunnel silently (only
  other read errors send ``vnc_error``, agent_vnc_tunnel.go:355-366). ``vnc_*`` messages are handled by
  the read loop between commands, so UI→pod bytes wait while a command runs (main.go:807-843).
* intended: a tunnel opens on demand, when ``vnc_data`` arrives for a session without one; an empty
  ``vnc_data`` (what the intended control plane sends when a UI connects) opens a fresh one, replacing any
  old one, so every UI connection gets a fresh RFB connection (its banner). Every such request gets exactly
  one answer, in order — ``vnc_ready`` or ``vnc_error`` — and every tunnel's end is exactly one more
  ``vnc_error`` after its ``vnc_ready`` (a pod-side EOF, a failed write, ``stop_session``, and a close on
  purpose: ``vnc_close`` or a fresh request replacing it), so the control plane can tell which tunnel a
  message belongs to (controlplane/vnc.py: a close it was not told of would make the next request's failure
  read as that tunnel's end, and the new stream would wait for an answer forever). After a ``vnc_error`` the
  stream it answered is over (the control plane closes that UI socket): bytes of it still in flight do not
  open a tunnel — that would be an answer to no request, and every later stream of the session would get the
  wrong tunnel's messages — only a fresh request (an empty ``vnc_data``) does. Failures are reported at
  once, tunnels close when the control-plane socket drops (their streams are dead; requests from that socket
  are dropped), and ``vnc_*`` messages bypass the command queue.
"""

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import time
from typing import Any, Awaitable, Callable, Dict, Optional

import aiohttp

from chaosstream.sandbox.agent import protocol
from chaosstream.sandbox.agent.config import AgentConfig
from chaosstream.sandbox.agent.kubeapi import Endpoint, PortForward, session_pod

log = logging.getLogger(__name__)

SendFunc = Callable[[str], Awaitable[None]]


@dataclasses.dataclass
class Tunnel:
    session_id: str
    pod_name: str
    port: int
    forward: PortForward
    relay: Optional[asyncio.Task] = None


class TunnelError(RuntimeError):
    """The tunnel could not be opened; the text is the ``vnc_error``'s ``error``."""


class VncTunnels:
    """The agent's tunnels by session id; see the module docstring."""

    def __init__(
        self,
        config: AgentConfig,
        workloads: Any,
        send: SendFunc,
        executor: Optional[concurrent.futures.Executor] = None,
    ) -> None:
        self._config = config
        self._workloads = workloads
        self._send = send
        self._executor = executor
        self._endpoint: Optional[Endpoint] = None
        self.as_built = config.profile.vnc_tunnel_as_built
        self.tunnels: Dict[str, Tunnel] = {}
        self._locks: Dict[str, asyncio.Lock] = {}
        self._tasks: set = set()
        # bumped when the control-plane socket drops: requests that came on an older socket, and opens
        # that finish after it, are dropped without a word (the control plane counts one vnc_ready or
        # vnc_error per request on each socket)
        self._epoch = 0
        # intended: sessions whose stream ended with a vnc_error (see the module docstring)
        self._ended: set = set()

    # -- messages from the control plane ---------------------------------------------------------------
    def fast_path(self, text: str) -> bool:
        """Intended: take a ``vnc_data``/``vnc_close`` frame off the read path (handled in its own task, in
        order per session); False for every other frame."""
        if self.as_built or '"vnc_' not in text[:64]:
            return False
        try:
            message = json.loads(text)
        except ValueError:
            return False
        if not isinstance(message, dict) or message.get("type") not in ("vnc_data", "vnc_close"):
            return False
        self._spawn(self.handle(str(message["type"]), message.get("payload"), self._epoch))
        return True

    async def handle(self, kind: str, payload: Any, epoch: Optional[int] = None) -> None:
        """One ``vnc_data`` or ``vnc_close`` message (agent_vnc_handler.go:46-87)."""
        if not isinstance(payload, dict) or not isinstance(payload.get("sessionId"), str):
            log.error("Failed to handle message: failed to parse VNC %s message", kind)
            return
        session_id = payload["sessionId"]
        if epoch is None:
            epoch = self._epoch
        if kind == "vnc_close":
            log.info("Closing VNC tunnel for session %s (reason: %s)", session_id, payload.get("reason", ""))
            async with contextlib.nullcontext() if self.as_built else self._lock(session_id):
                if not await self._end(session_id, "closed by the control plane"):
                    log.info("Failed to close tunnel: tunnel not found for session %s", session_id)
            return
        data = payload.get("data")
        data = data if isinstance(data, str) else ""
        if self.as_built:
            await self._write(session_id, data)
            return
        async with self._lock(session_id):
            if epoch != self._epoch:
                return  # asked on a socket that is gone: its stream is gone too
            if not data or session_id not in self.tunnels:
                if data and session_id in self._ended:
                    log.info("Failed to send data to pod for session %s: tunnel not found", session_id)
                    return  # bytes of a stream that ended: its UI socket is being closed
                await self._end(session_id, "replaced by a new request")  # a fresh RFB connection
                self._ended.discard(session_id)
                try:
                    if not await self._open(session_id, epoch):
                        return
                except TunnelError as exc:
                    log.warning("Failed to create VNC tunnel for session %s: %s", session_id, exc)
                    if epoch == self._epoch:
                        self._ended.add(session_id)
                        await self._send(protocol.vnc_error(session_id, str(exc)))
                    return
            if data:
                await self._write(session_id, data)

    async def _write(self, session_id: str, data: str) -> None:
        tunnel = self.tunnels.get(session_id)
        if tunnel is None:
            log.info("Failed to send data to pod for session %s: tunnel not found", session_id)
            return
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            log.info(
                "Failed to send data to pod for session %s: failed to decode base64: %s", session_id, exc
            )
            return
        try:
            await tunnel.forward.write(raw)
        except (ConnectionError, RuntimeError) as exc:
            log.info("Write error for session %s: %s", session_id, exc)
            self._spawn(self._end(session_id, f"write error: {exc}"))

    # -- opening ---------------------------------------------------------------------------------------
    def opened_session(self, session_id: str) -> None:
        """After a successful ``start_session``: as built, open the tunnel in the background after
        ``vnc_tunnel_delay`` (intended: nothing, tunnels open on demand)."""
        if self.as_built:
            self._spawn(self._open_at_start(session_id))

    async def _open_at_start(self, session_id: str) -> None:
        await asyncio.sleep(self._config.timers.vnc_tunnel_delay)
        async with self._lock(session_id):
            try:
                if session_id in self.tunnels:
                    raise TunnelError(f"tunnel already exists for session {session_id}")
                await self._open(session_id, self._epoch)
            except TunnelError as exc:
                log.warning("Failed to create VNC tunnel for session %s: %s", session_id, exc)
                await self._send(protocol.vnc_error(session_id, str(exc)))

    def endpoint(self) -> Endpoint:
        """The API server and the agent's credentials, read from its kubeconfig at the first tunnel."""
        if self._endpoint is None:
            self._endpoint = Endpoint.load(self._config.kubeconfig)
        return self._endpoint

    async def _open(self, session_id: str, epoch: int) -> bool:
        """Find the pod, port-forward, connect, start the relay, then ``vnc_ready``; False (and nothing
        sent) when the control-plane socket changed meanwhile."""
        namespace = self._config.namespace
        started = time.monotonic()
        ready_timeout = self._config.timers.vnc_ready_timeout
        try:
            endpoint = self.endpoint()
            async with aiohttp.ClientSession() as http:
                pod_name, port = await asyncio.wait_for(
                    session_pod(http, endpoint, namespace, session_id), ready_timeout
                )
        except Exception as exc:  # WorkloadError, the API unreachable, an unreadable kubeconfig
            raise TunnelError(f"failed to find pod: {exc or type(exc).__name__}") from None
        try:
            forward = await asyncio.wait_for(
                PortForward.open(endpoint, namespace, pod_name, port), ready_timeout
            )
        except Exception as exc:
            if self.as_built:
                # client-go's ForwardPorts fails before signalling ready: CreateTunnel only sees its 30 s
                # timeout (the cause is logged, not sent)
                log.warning("Port-forward error for %s: %s", session_id, exc)
                await asyncio.sleep(max(0.0, ready_timeout - (time.monotonic() - started)))
                raise TunnelError("timeout waiting for port-forward") from None
            raise TunnelError(f"failed to start port-forward: {exc}") from None
        if epoch != self._epoch and not self.as_built:
            self._spawn(forward.close())
            return False
        tunnel = Tunnel(session_id, pod_name, port, forward)
        self.tunnels[session_id] = tunnel
        await self._send(protocol.vnc_ready(session_id, port, pod_name))
        tunnel.relay = asyncio.create_task(self._relay(tunnel), name=f"vnc-relay-{session_id}")
        log.info("Tunnel created for session %s (pod %s, port %d)", session_id, pod_name, port)
        return True

    async def _relay(self, tunnel: Tunnel) -> None:
        """Pod bytes to the control plane until the tunnel ends (agent_vnc_tunnel.go:338-380); one
        ``vnc_data`` per data frame (the kubelet sends at most 32 KiB a frame, the agent's read size,
        agent_vnc_tunnel.go:344)."""
        error = ""
        try:
            while True:
                data = await tunnel.forward.read()
                if not data:
                    break
                await self._send(protocol.vnc_data(tunnel.session_id, base64.b64encode(data).decode()))
        except asyncio.CancelledError:
            return
        except Exception as exc:  # a read error other than EOF: reported in both profiles
            error = f"read error: {exc}"
        if self.tunnels.get(tunnel.session_id) is not tunnel:
            return  # closed on purpose
        if not error and not self.as_built:
            forwarded = ""
            with contextlib.suppress(Exception):
                forwarded = tunnel.forward.error(tunnel.port) or ""
            error = f"VNC tunnel closed: {forwarded.strip() or 'the pod closed the connection'}"
        log.info("Data relay stopped for session %s%s", tunnel.session_id, f": {error}" if error else "")
        await self.close(tunnel.session_id)
        if error:
            self._ended.add(tunnel.session_id)
            await self._send(protocol.vnc_error(tunnel.session_id, error))

    # -- closing ---------------------------------------------------------------------------------------
    async def close(self, session_id: str) -> bool:
        """Close the session's tunnel; False when it has none."""
        tunnel = self.tunnels.pop(session_id, None)
        if tunnel is None:
            return False
        if tunnel.relay is not None and tunnel.relay is not asyncio.current_task():
            tunnel.relay.cancel()
        self._spawn(tunnel.forward.close())  # in the background: a partitioned API must not hold the lock
        log.info("Tunnel closed for session %s", session_id)
        return True

    async def _end(self, session_id: str, why: str) -> bool:
        """Close the session's tunnel; intended, the control plane hears of it (one ``vnc_error``: the
        tunnel's end). False when it has none."""
        closed = await self.close(session_id)
        if closed and not self.as_built:
            self._ended.add(session_id)
            await self._send(protocol.vnc_error(session_id, f"VNC tunnel closed: {why}"))
        return closed

    async def stop_session(self, session_id: str) -> bool:
        """``stop_session`` closes the session's tunnel (agent_handlers.go:212-217); intended, the
        control plane hears that the tunnel ended (so the UI learns its stream is over)."""
        async with contextlib.nullcontext() if self.as_built else self._lock(session_id):
            closed = await self.close(session_id)
        if closed and not self.as_built:
            self._ended.add(session_id)
            await self._send(protocol.vnc_error(session_id, "VNC tunnel closed: the session was stopped"))
        return closed

    async def close_all(self) -> None:
        self._epoch += 1
        self._ended.clear()
        for session_id in list(self.tunnels):
            await self.close(session_id)

    def _lock(self, session_id: str) -> asyncio.Lock:
        return self._locks.setdefault(session_id, asyncio.Lock())

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
