"""The few Kubernetes calls on the agent's latency-critical paths, as plain HTTP/WebSocket.

client-go is compiled into the Go agent: a Lease call or a port-forward costs it milliseconds from the
first instant of a new process. Building the python `kubernetes` client (its import and API classes, then
an ApiClient per port-forward) costs this emulation seconds on a loaded machine — an artefact that would
delay leadership (leader.py) and every VNC tunnel after an agent restart (vnc.py) and so break the
ratio between the sandbox's scaled objectives and StreamSpace's. Those calls go here: the kubeconfig's
server and credentials (the sandbox's is a plain URL and a bearer token), JSON over HTTP, and the
``pods/portforward`` WebSocket (``v4.channel.k8s.io``) through aiohttp. Everything else the agent does
stays on the real client (workloads.py).
"""

import asyncio
import contextlib
import dataclasses
import json
import os
import ssl
from typing import Any, Dict, Optional, Tuple
from urllib.parse import quote

import aiohttp

from chaosstream.sandbox.agent.workloads import VNC_PORT, WorkloadError

PORTFORWARD_PROTOCOL = "v4.channel.k8s.io"
_SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"  # in-cluster config, as rest.InClusterConfig


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """The API server and the agent's credentials, from its kubeconfig (empty → in-cluster)."""

    server: str
    token: str = ""
    ca_file: str = ""
    insecure: bool = False

    @classmethod
    def load(cls, kubeconfig: str) -> "Endpoint":
        if not kubeconfig:
            host, port = (
                os.environ.get("KUBERNETES_SERVICE_HOST", ""),
                os.environ.get("KUBERNETES_SERVICE_PORT"),
            )
            with open(f"{_SA_DIR}/token", encoding="utf-8") as fh:
                token = fh.read().strip()
            return cls(f"https://{host}:{port or 443}", token, f"{_SA_DIR}/ca.crt")
        import yaml

        with open(kubeconfig, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        current = data.get("current-context")
        context = next(c["context"] for c in data["contexts"] if c["name"] == current)
        cluster = next(c["cluster"] for c in data["clusters"] if c["name"] == context["cluster"])
        user = next((u["user"] for u in data.get("users") or [] if u["name"] == context.get("user")), {})
        return cls(
            str(cluster["server"]).rstrip("/"),
            str(user.get("token") or ""),
            str(cluster.get("certificate-authority") or ""),
            bool(cluster.get("insecure-skip-tls-verify")),
        )

    def headers(self) -> Dict[str, str]:
        """JSON headers with the bearer token (never logged)."""
        out = {"Accept": "application/json", "Content-Type": "application/json"}
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
        return out

    def ssl(self) -> Any:
        """aiohttp's ``ssl`` argument: the cluster CA when there is one."""
        if self.insecure:
            return False
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True


def _status_message(status: int, body: bytes) -> str:
    """The API Status ``message`` of an error answer, else ``<code> <reason>`` (client-go's text)."""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else f"{status}"


async def session_pod(
    http: aiohttp.ClientSession, endpoint: Endpoint, namespace: str, session_id: str
) -> Tuple[str, int]:
    """The first pod labelled ``session=<id>`` and its VNC port (the port named ``vnc``, else 3000);
    errors as ``findSessionPod`` (agents/k8s-agent/agent_vnc_tunnel.go:221-255)."""
    url = f"{endpoint.server}/api/v1/namespaces/{quote(namespace)}/pods"
    async with http.get(
        url, params={"labelSelector": f"session={session_id}"}, headers=endpoint.headers(), ssl=endpoint.ssl()
    ) as response:
        body = await response.read()
        if response.status >= 300:
            raise WorkloadError(_status_message(response.status, body))
    items = json.loads(body).get("items") or []
    if not items:
        raise WorkloadError(f"no pod found for session {session_id}")
    pod = items[0]  # the real agent only looks at the first pod
    phase = (pod.get("status") or {}).get("phase") or ""
    if phase != "Running":
        raise WorkloadError(f"pod not running (phase: {phase})")
    port = VNC_PORT
    for container in (pod.get("spec") or {}).get("containers") or []:
        for item in container.get("ports") or []:
            if item.get("name") == "vnc":
                port = int(item.get("containerPort") or 0)
    return str(pod["metadata"]["name"]), port


class PortForward:
    """One port of ``pods/<pod>/portforward``: channel 0 carries data both ways, channel 1 the
    kubelet's error text; the first frame on each is the port (2 bytes, little-endian)."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, port: int) -> None:
        self._http = http
        self._ws = ws
        self.port = port
        self._errors = bytearray()
        self._prefixed = {0: False, 1: False}

    @classmethod
    async def open(cls, endpoint: Endpoint, namespace: str, pod: str, port: int) -> "PortForward":
        """Dial the port-forward; a refused upgrade raises ``WorkloadError`` with client-go's text
        (``error upgrading connection: <Status message>``)."""
        refused: Dict[str, Any] = {}

        async def keep_refusal(_s: Any, _c: Any, params: aiohttp.TraceRequestEndParams) -> None:
            # aiohttp drops the body of a non-101 answer; client-go reports its Status message
            if params.response.status != 101:
                refused["text"] = _status_message(params.response.status, await params.response.read())

        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(keep_refusal)
        http = aiohttp.ClientSession(trace_configs=[trace])
        url = f"{endpoint.server}/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/portforward"
        try:
            ws = await http.ws_connect(
                url,
                params={"ports": str(port)},
                protocols=(PORTFORWARD_PROTOCOL,),
                headers={k: v for k, v in endpoint.headers().items() if k == "Authorization"},
                ssl=endpoint.ssl(),
                max_msg_size=0,
                autoping=True,
            )
        except aiohttp.WSServerHandshakeError as exc:
            await http.close()
            raise WorkloadError(f"error upgrading connection: {refused.get('text') or exc.status}") from None
        except BaseException:
            await http.close()
            raise
        return cls(http, ws, port)

    async def read(self) -> bytes:
        """The next bytes from the pod; b"" when the forward ended (the pod side closed, or the socket)."""
        while True:
            msg = await self._ws.receive()
            if msg.type != aiohttp.WSMsgType.BINARY:
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                    continue
                return b""  # CLOSE, CLOSED, CLOSING, ERROR
            data: bytes = msg.data
            if not data or data[0] not in self._prefixed:
                continue
            channel, data = data[0], data[1:]
            if not self._prefixed[channel]:  # the port number: checked, as the python client does
                if len(data) < 2 or int.from_bytes(data[:2], "little") != self.port:
                    raise ConnectionError(f"unexpected port on channel {channel}")
                self._prefixed[channel] = True
                data = data[2:]
            if channel == 1:
                self._errors += data
            elif data:
                return data

    async def write(self, data: bytes) -> None:
        await self._ws.send_bytes(b"\x00" + data)

    def error(self, _port: int = 0) -> str:
        """The kubelet's error text for the port, if it sent one."""
        return self._errors.decode(errors="replace")

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # a close handshake that times out, a dead connection
            await asyncio.wait_for(self._ws.close(), 2.0)
        await self._http.close()


def json_call(
    endpoint: Endpoint, method: str, path: str, body: Optional[Dict[str, Any]], timeout: float
) -> Any:
    """A blocking JSON call (leader election runs before the event loop): urllib, never a proxy."""
    import urllib.request

    handlers: list = [urllib.request.ProxyHandler({})]  # the API server, never a proxy
    context = endpoint.ssl()
    if isinstance(context, ssl.SSLContext):
        handlers.append(urllib.request.HTTPSHandler(context=context))
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{endpoint.server}{path}", data=data, method=method, headers=endpoint.headers()
    )
    with urllib.request.build_opener(*handlers).open(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")
