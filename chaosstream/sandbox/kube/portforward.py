"""``pods/portforward`` over WebSocket, as the kube-apiserver and the kubelet serve it.

Protocol ``v4.channel.k8s.io`` (binary; also what a client offering no subprotocol gets): for the i-th port
of ``?ports=``, channel ``2i`` carries data both ways and channel ``2i+1`` errors (server to client). Each
frame starts with its channel byte; the first frame the server sends on every channel is the port number,
2 bytes little-endian (the real python client checks it). A port the pod does not listen on gets the
kubelet's error text on its error channel, then the socket closes; when the pod's side closes (the pod
stopped, the server hung up) the socket closes too.

Errors before the upgrade are plain Status responses: 404 for an unknown pod, 400 for a pod without a
node or not running, 400 without ``ports``, 400 for SPDY (client-go's POST, kubectl's SPDY-over-WebSocket
tunnelling ``SPDY/3.1+portforward.k8s.io``): not emulated. RBAC: a WebSocket GET needs ``get`` on ``pods/portforward``
and, since Kubernetes 1.35 (AuthorizePodWebsocketUpgradeCreatePermission, KEP-4006), ``create`` too; a
POST (SPDY) needs ``create`` (server.py builds the attributes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from .errors import ApiError, bad_request, not_found
from .resources import POD
from .store import clone

if TYPE_CHECKING:
    from .cluster import Cluster

log = logging.getLogger(__name__)

PROTOCOLS = ("v4.channel.k8s.io",)
CHUNK = 32 * 1024


def _ports(request: web.Request) -> list[int]:
    ports: list[int] = []
    for value in request.query.getall("ports", []):
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                number = int(part)
            except ValueError:
                raise bad_request(f'invalid port "{part}"') from None
            if not 0 < number < 65536:
                raise bad_request(f"port {number} must be > 0 and < 65536")
            ports.append(number)
    if not ports:
        raise bad_request("at least one port must be specified")
    return ports


async def handle_portforward(
    emu: Cluster, request: web.Request, namespace: str, name: str
) -> web.StreamResponse:
    """Serve one port-forward; see the module docstring."""
    pod = emu.store.get(POD, namespace, name)
    if pod is None:
        raise not_found("pods", "", name)
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    if request.headers.get("Upgrade", "").lower() != "websocket" or (offered and PROTOCOLS[0] not in offered):
        # SPDY (client-go's POST) and kubectl's SPDY-over-WebSocket tunnelling are not emulated
        raise ApiError(
            400, "BadRequest", "Upgrade request required: this API serves pods/portforward over WebSocket "
            f"subprotocol {PROTOCOLS[0]} only (offered: {', '.join(offered) or 'none'})",
        )  # fmt: skip
    ports = _ports(request)
    if not pod["spec"].get("nodeName"):
        raise bad_request(f"pod {name} does not have a host assigned")
    phase = (pod.get("status") or {}).get("phase")
    if phase != "Running" or pod["metadata"].get("deletionTimestamp"):
        raise bad_request(f"pod {name} is not running (phase {phase})")
    ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "BadRequest", "Upgrade request required")
    await ws.prepare(request)
    writers: dict[int, asyncio.StreamWriter] = {}
    pumps: list[asyncio.Task] = []
    try:
        for index, port in enumerate(ports):
            prefix = port.to_bytes(2, "little")
            await ws.send_bytes(bytes([2 * index]) + prefix)
            await ws.send_bytes(bytes([2 * index + 1]) + prefix)
        for index, port in enumerate(ports):
            try:
                reader, writer = await emu.runtime.open_port(clone(pod), port)
            except OSError as exc:
                uid = pod["metadata"]["uid"]
                text = (
                    f"error forwarding port {port} to pod {uid}, uid : failed to execute portforward in "
                    f'network namespace "/var/run/netns/cni-{uid}": failed to connect to localhost:{port} '
                    f'inside namespace "{uid}", IPv4: {exc} '
                )
                await ws.send_bytes(bytes([2 * index + 1]) + text.encode())
                continue
            writers[index] = writer
            pumps.append(asyncio.create_task(_pod_to_client(ws, reader, 2 * index)))
        if not writers:
            return ws
        reading = asyncio.create_task(_client_to_pod(ws, writers))
        await asyncio.wait([reading, *pumps], return_when=asyncio.FIRST_COMPLETED)
        reading.cancel()
    except (ConnectionResetError, RuntimeError):
        pass
    finally:
        for task in pumps:
            task.cancel()
        for writer in writers.values():
            writer.transport.abort()
        with contextlib.suppress(Exception):
            await ws.close()
    return ws


async def _pod_to_client(ws: web.WebSocketResponse, reader: asyncio.StreamReader, channel: int) -> None:
    """Pod bytes to the data channel until the pod's side closes."""
    head = bytes([channel])
    while True:
        data = await reader.read(CHUNK)
        if not data:
            return
        await ws.send_bytes(head + data)


async def _client_to_pod(ws: web.WebSocketResponse, writers: dict[int, asyncio.StreamWriter]) -> None:
    """Client frames on a data channel to that port until the client closes the socket."""
    async for msg in ws:
        if msg.type != WSMsgType.BINARY or not msg.data:
            continue
        channel = msg.data[0]
        writer = writers.get(channel // 2) if channel % 2 == 0 else None
        if writer is None:
            continue
        writer.write(msg.data[1:])
        await writer.drain()
