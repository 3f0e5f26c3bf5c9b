"""``pods/exec`` over WebSocket (v5/v4.channel.k8s.io): stdin on channel 0, stdout 1, stderr 2, status 3."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .errors import ApiError, bad_request, not_found
from .resources import POD
from .store import clone

if TYPE_CHECKING:
    from .cluster import Cluster

Obj = dict[str, Any]
log = logging.getLogger(__name__)

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
V4_STDIN_IDLE = 0.2  # v4 has no "close stdin" frame: stdin ends after this long without data


def select_container(pod: Obj, container: str | None) -> str:
    """The container to exec in, with the apiserver's 400 errors (ephemeral containers count too)."""
    spec = pod["spec"]
    name = pod["metadata"]["name"]
    regular = [c["name"] for c in spec.get("containers") or []]
    ephemeral = [c["name"] for c in spec.get("ephemeralContainers") or []]
    init = [c["name"] for c in spec.get("initContainers") or []]
    if not container:
        if len(regular) == 1:
            return regular[0]
        raise bad_request(
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(regular)}]"
            + (f" or one of the ephemeral containers: [{' '.join(ephemeral)}]" if ephemeral else "")
        )
    if container not in regular + ephemeral + init:
        raise bad_request(f"container {container} is not valid for pod {name}")
    return container


def _container_running(pod: Obj, container: str) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    for s in (status.get("containerStatuses") or []) + (status.get("ephemeralContainerStatuses") or []):
        if s.get("name") == container:
            return "running" in (s.get("state") or {})
    return False


def exit_status(rc: int) -> Obj:
    """The channel-3 Status: Success, or NonZeroExitCode with an ExitCode cause."""
    if rc == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command [...], exit code {rc}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(rc)}]},
    }


async def _read_stdin(ws: web.WebSocketResponse, v5: bool) -> bytes:
    chunks: list[bytes] = []
    while True:
        try:
            msg = await (ws.receive() if v5 else ws.receive(timeout=V4_STDIN_IDLE))
        except TimeoutError:
            break
        if msg.type == WSMsgType.BINARY:
            data: bytes = msg.data
        elif msg.type == WSMsgType.TEXT:  # base64 subprotocols are not offered; treat text as raw
            data = msg.data.encode()
        else:
            break
        if not data:
            continue
        if data[0] == 0xFF and data[1:2] == b"\x00":  # v5: close of channel 0 = end of stdin
            break
        if data[0] == 0:
            chunks.append(data[1:])
    return b"".join(chunks)


async def handle_exec(emu: Cluster, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
    """Serve one exec: errors as plain HTTP Status before the upgrade, then the channel protocol."""
    pod = emu.store.get(POD, namespace, name)
    if pod is None:
        raise not_found("pods", "", name)
    q = request.query
    container = select_container(pod, q.get("container"))
    command = q.getall("command", [])
    if not command:
        raise bad_request("you must specify at least 1 command")
    if not _container_running(pod, container):
        raise bad_request(f"container {container} is not running in pod {name}")
    want_stdin = q.get("stdin", "false").lower() in ("1", "true")
    want_stdout = q.get("stdout", "true").lower() in ("1", "true")
    want_stderr = q.get("stderr", "true").lower() in ("1", "true")
    ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "BadRequest", "Upgrade request required")
    await ws.prepare(request)
    v5 = ws.ws_protocol == "v5.channel.k8s.io"
    try:
        stdin = await _read_stdin(ws, v5) if want_stdin else None
        try:
            out, err, rc = await emu.runtime.exec(clone(pod), container, list(command), stdin)
        except Exception as exc:  # a crashing executor reads like a failed exec, not a dead socket
            log.exception("exec failed")
            out, err, rc = b"", f"exec failed: {exc}\n".encode(), 126
        if out and want_stdout:
            await ws.send_bytes(b"\x01" + out)
        if err and want_stderr:
            await ws.send_bytes(b"\x02" + err)
        await ws.send_bytes(b"\x03" + json.dumps(exit_status(rc)).encode())
    except (ConnectionResetError, RuntimeError):
        pass
    await ws.close()
    return ws
