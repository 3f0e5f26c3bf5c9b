"""The sandbox agent as a real subprocess against a protocol peer (and the Kubernetes emulator).

The peer below is a small aiohttp server implementing ``POST /api/v1/agents/register`` and the agent
WebSocket per docs/streamspace.md#25-agent-self-service and #3-agent-and-control-plane-protocol; it records
every request and frame and sends commands.
"""

import asyncio
import dataclasses
import datetime
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest
from aiohttp import WSMsgType, web
from helpers.kube import emulator
from helpers.net import free_port

from chaosstream.sandbox.kube import ContainerRuntime
from chaosstream.sandbox.timers import FAST, Timers

pytestmark = pytest.mark.timeout(60)

KEY = "a" * 64
NEW_KEY = "b" * 64
NAMESPACE = "streamspace"
TIMERS: Timers = dataclasses.replace(
    FAST,
    reconnect_backoff=(0.5, 1.0, 1.5, 2.0, 2.5),
    approval_retry=0.4,
    ws_ping_interval=3.6,
    ws_read_deadline=4.0,
    start_timeout=10.0,
)
HEARTBEAT = 0.3  # HEALTH_CHECK_INTERVAL=300ms


# --------------------------------------------------------------------------------------------- peer
class Peer:
    """A control-plane stand-in on 127.0.0.1 running in its own thread and event loop."""

    def __init__(self) -> None:
        self.registers: List[Dict[str, Any]] = []
        self.connects: List[Dict[str, Any]] = []
        self.frames: List[Dict[str, Any]] = []
        self.closes: List[Dict[str, Any]] = []
        self.pending_registrations = 0  # answer 202 pending this many times
        self.fail_registrations = 0  # answer 503 this many times
        self.issue_api_key: Optional[str] = None
        self.answer_pings = True  # False: the agent's WebSocket pings get no pong
        self._ws: Optional[web.WebSocketResponse] = None
        self._closed_by_peer: set = set()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.port = self._call(self._start())

    def _call(self, coro: Any, timeout: float = 5.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/api/v1/agents/register", self._register)
        app.router.add_get("/api/v1/agents/connect", self._connect)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return self._runner.addresses[0][1]

    async def _register(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.registers.append({"t": time.time(), "key": request.headers.get("X-Agent-API-Key"), "body": body})
        agent = {"agentId": body.get("agentId"), "platform": body.get("platform"), "status": "online"}
        if self.fail_registrations > 0:
            self.fail_registrations -= 1
            return web.json_response({"error": "Service unavailable"}, status=503)
        if self.pending_registrations > 0:
            self.pending_registrations -= 1
            return web.json_response(
                {"agent": agent, "approvalStatus": "pending", "message": "Agent pending approval"}, status=202
            )
        answer: Dict[str, Any] = {"agent": agent, "approvalStatus": "approved", "message": "Agent approved"}
        if self.issue_api_key:
            answer["apiKey"] = self.issue_api_key
        return web.json_response(answer, status=200)

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        index = len(self.connects)
        self.connects.append(
            {
                "t": time.time(),
                "agent_id": request.query.get("agent_id"),
                "raw_query": request.rel_url.raw_query_string,
                "key": request.headers.get("X-Agent-API-Key"),
            }
        )
        ws = web.WebSocketResponse(autoping=self.answer_pings)
        await ws.prepare(request)
        self._ws = ws
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.frames.append(
                    {"t": time.time(), "conn": index, "msg": json.loads(msg.data), "raw": msg.data}
                )
        self.closes.append(
            {"t": time.time(), "conn": index, "code": ws.close_code, "by_peer": index in self._closed_by_peer}
        )
        return ws

    # -- test API --------------------------------------------------------------------------------------
    def send(self, message: Any) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        assert self._ws is not None, "agent not connected"
        self._call(self._ws.send_str(text))

    def close_socket(self) -> float:
        """Close the current socket from the server side; return the time it was closed."""
        assert self._ws is not None
        self._closed_by_peer.add(len(self.connects) - 1)
        self._call(self._ws.close(code=1001, message=b"going away"))
        return time.time()

    def of_type(self, kind: str, conn: Optional[int] = None) -> List[Dict[str, Any]]:
        return [f for f in list(self.frames) if f["msg"].get("type") == kind and conn in (None, f["conn"])]

    def for_command(self, command_id: str) -> List[Dict[str, Any]]:
        return [
            f for f in list(self.frames) if (f["msg"].get("payload") or {}).get("commandId") == command_id
        ]

    def stop(self) -> None:
        self._call(self._runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def command(command_id: str, action: str, payload: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "type": "command",
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
        "payload": {"commandId": command_id, "action": action, "payload": payload},
    }


# --------------------------------------------------------------------------------------------- agent
@dataclasses.dataclass
class AgentProc:
    proc: subprocess.Popen
    log_path: Path
    started: float

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_time(self, needle: str) -> float:
        """Wall-clock time of the first log line containing ``needle`` (the log uses local time)."""
        for line in self.log().splitlines():
            if needle in line:
                stamp = line.split(" ", 1)[0]
                return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f").timestamp()
        raise AssertionError(f"no log line with {needle!r}:\n{self.log()}")


def write_dead_kubeconfig(path: Path) -> Path:
    """A kubeconfig whose API server refuses connections (for tests that need no Kubernetes)."""
    server = f"http://127.0.0.1:{free_port()}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dead", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "u", "namespace": NAMESPACE}}],
        "current-context": "dead",
    }
    path.write_text(json.dumps(config))  # JSON is valid YAML
    return path


@pytest.fixture
def peer():
    server = Peer()
    yield server
    server.stop()


@pytest.fixture
def spawn(tmp_path: Path):
    """Start ``python -m chaosstream.sandbox.agent`` with a test environment; killed at teardown."""
    procs: List[AgentProc] = []
    dead_kubeconfig = write_dead_kubeconfig(tmp_path / "dead-kubeconfig")

    def _spawn(peer: Optional[Peer], timers: Timers = TIMERS, drop=(), **overrides: str) -> AgentProc:
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "AGENT_ID", "SANDBOX_FAULTS")}
        env.update(
            {
                "AGENT_ID": "k8s-sandbox-test",
                "CONTROL_PLANE_URL": f"ws://127.0.0.1:{peer.port if peer else free_port()}",
                "AGENT_API_KEY": KEY,
                "PLATFORM": "kubernetes",
                "REGION": "sandbox-1",
                "NAMESPACE": NAMESPACE,
                "KUBECONFIG": str(dead_kubeconfig),
                "MAX_SESSIONS": "7",
                "MAX_CPU": "8 cores",
                "MAX_MEMORY": "16Gi",
                "HEALTH_CHECK_INTERVAL": "300ms",
                "POD_NAME": "streamspace-k8s-agent-abc12",
                "SANDBOX_TIMERS": timers.to_json(),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(overrides)
        for name in drop:
            env.pop(name, None)
        log_path = tmp_path / f"agent-{len(procs)}.log"
        with open(log_path, "wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "chaosstream.sandbox.agent"], env=env, stdout=sink, stderr=sink
            )
        agent = AgentProc(proc, log_path, time.time())
        procs.append(agent)
        return agent

    yield _spawn
    for agent in procs:
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait(5)


def connected(peer: Peer, count: int = 1, timeout: float = 10.0) -> Dict[str, Any]:
    """The count-th connection, once its WebSocket is prepared (the peer records the connect before)."""
    return wait_until(
        lambda: len(peer.connects) >= count and peer._ws is not None and peer.connects[count - 1],
        timeout,
        "WS connect",
    )


# --------------------------------------------------------------------------------------------- tests
def test_register_connect_and_heartbeat(peer: Peer, spawn) -> None:
    agent = spawn(peer, AGENT_ID="k8s sandbox/a+b")
    conn = connected(peer)
    register = peer.registers[0]
    assert register["key"] == KEY
    assert register["body"] == {
        "agentId": "k8s sandbox/a+b",
        "platform": "kubernetes",
        "region": "sandbox-1",
        "capacity": {"maxSessions": 7, "cpu": "8 cores", "memory": "16Gi"},
        "metadata": {"namespace": NAMESPACE, "kubernetes": True},
    }
    assert conn["key"] == KEY
    assert conn["raw_query"] == "agent_id=" + urllib.parse.quote_plus("k8s sandbox/a+b")
    assert conn["agent_id"] == "k8s sandbox/a+b"

    beats = wait_until(
        lambda: len(peer.of_type("heartbeat")) >= 5 and peer.of_type("heartbeat"), 5, "heartbeats"
    )
    msg = beats[0]["msg"]
    assert set(msg) == {"type", "timestamp", "payload"}
    datetime.datetime.fromisoformat(msg["timestamp"].replace("Z", "+00:00"))
    assert msg["payload"] == {
        "status": "online",
        "activeSessions": 0,
        "capacity": {"maxSessions": 7, "cpu": "8 cores", "memory": "16Gi"},
    }
    # Faithful to the real agent: the first heartbeat comes one interval after connecting.
    first_delay = beats[0]["t"] - conn["t"]
    assert HEARTBEAT * 0.7 <= first_delay <= HEARTBEAT + 0.4, first_delay
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(beats)]
    assert all(HEARTBEAT * 0.6 <= gap <= HEARTBEAT * 1.8 for gap in gaps), gaps
    assert "[agent k8s sandbox/a+b]" in agent.log()


def test_agent_id_from_prefix_and_pod_name(peer: Peer, spawn) -> None:
    spawn(peer, SANDBOX_AGENT_ID_PREFIX="k8s-prod-cluster", POD_NAME="streamspace-k8s-agent-7f9c")
    conn = connected(peer)
    assert conn["agent_id"] == "k8s-prod-cluster-streamspace-k8s-agent-7f9c"
    assert peer.registers[0]["body"]["agentId"] == conn["agent_id"]


def test_commands_ack_first_one_at_a_time_and_ping(peer: Peer, spawn) -> None:
    spawn(peer)
    connected(peer)
    # Sent back to back in separate frames; the Kubernetes API is unreachable, stop_session still succeeds.
    peer.send(
        command("cmd-00000001", "stop_session", {"sessionId": "admin-firefox-0001", "namespace": NAMESPACE})
    )
    peer.send(command("cmd-00000002", "bogus_action", {"sessionId": "admin-firefox-0001"}))
    peer.send({"type": "ping", "timestamp": datetime.datetime.now(datetime.UTC).isoformat()})
    wait_until(lambda: peer.of_type("pong"), 15, "pong")
    seq = [
        (f["msg"]["type"], f["msg"]["payload"].get("commandId"))
        for f in peer.frames
        if f["msg"]["type"] in ("ack", "complete", "failed")
    ]
    assert seq == [
        ("ack", "cmd-00000001"),
        ("complete", "cmd-00000001"),
        ("ack", "cmd-00000002"),
        ("failed", "cmd-00000002"),
    ]
    done = peer.for_command("cmd-00000001")[1]["msg"]
    assert done["payload"]["result"] == {"sessionId": "admin-firefox-0001", "state": "terminated"}
    assert set(done) == {"type", "timestamp", "payload"}
    assert peer.for_command("cmd-00000002")[1]["msg"]["payload"]["error"] == "unknown action: bogus_action"
    pong = peer.of_type("pong")[0]
    # The pong comes after both commands were answered: the read loop handles one frame at a time.
    assert pong["t"] >= peer.for_command("cmd-00000002")[1]["t"]


def test_batched_frame_is_lost_with_a_parse_error(peer: Peer, spawn) -> None:
    agent = spawn(peer)
    connected(peer)
    first = json.dumps(command("cmd-batch-1", "hibernate_session", {"sessionId": "s1"}))
    second = json.dumps(command("cmd-batch-2", "hibernate_session", {"sessionId": "s2"}))
    peer.send(first + "\n" + second)
    wait_until(lambda: "failed to parse message" in agent.log(), 5, "parse error in the log")
    peer.send(command("cmd-single", "bogus_action", {}))
    wait_until(lambda: len(peer.for_command("cmd-single")) == 2, 5, "answer to the single frame")
    assert peer.for_command("cmd-batch-1") == [] and peer.for_command("cmd-batch-2") == []
    assert "Extra data" in agent.log()


def test_reconnect_walks_the_backoff_list(peer: Peer, spawn) -> None:
    agent = spawn(peer)
    connected(peer)
    wait_until(lambda: peer.of_type("heartbeat", conn=0), 5, "first heartbeat")
    peer.fail_registrations = 1  # attempt 1 (after 0.5 s) fails, attempt 2 (after 1.0 s more) succeeds
    closed_at = peer.close_socket()
    conn = connected(peer, 2, timeout=10)
    attempts = [r["t"] - closed_at for r in peer.registers[1:]]
    assert 0.45 <= attempts[0] <= 1.1, attempts
    assert 1.45 <= attempts[1] <= 2.4, attempts
    assert 1.45 <= conn["t"] - closed_at <= 2.5
    # Baseline: the write path works on the new socket (heartbeats and command answers).
    wait_until(lambda: len(peer.of_type("heartbeat", conn=1)) >= 2, 5, "heartbeats after reconnect")
    peer.send(command("cmd-after", "bogus_action", {}))
    wait_until(lambda: len(peer.for_command("cmd-after")) == 2, 5, "answer after reconnect")
    log = agent.log()
    assert "Reconnect attempt 1/5 (waiting 0.50s)" in log and "Reconnect attempt 1 failed" in log
    assert "Reconnect attempt 2/5 (waiting 1.00s)" in log and "Reconnected successfully" in log
    assert agent.proc.poll() is None


def test_read_deadline_is_extended_by_pongs_only(peer: Peer, spawn) -> None:
    timers = dataclasses.replace(TIMERS, ws_ping_interval=0.3, ws_read_deadline=0.5)
    spawn(peer, timers)
    connected(peer)
    time.sleep(1.6)  # three deadlines: the pongs keep the socket up
    assert len(peer.connects) == 1 and peer.closes == []

    peer.answer_pings = False
    closed_at = peer.close_socket()
    conn = connected(peer, 2)  # the new socket's pings go unanswered
    close = wait_until(
        lambda: len(peer.closes) >= 2 and peer.closes[1], 5, "agent gives up the silent socket"
    )
    assert 0.4 <= close["t"] - conn["t"] <= 1.2, close["t"] - conn["t"]
    assert conn["t"] - closed_at >= 0.45


def test_pending_approval_registers_again_without_connecting(peer: Peer, spawn) -> None:
    peer.pending_registrations = 2
    peer.issue_api_key = NEW_KEY
    spawn(peer)
    conn = connected(peer)
    assert len(peer.registers) == 3
    times = [r["t"] for r in peer.registers]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.35 <= gap <= 1.0 for gap in gaps), gaps
    assert conn["t"] >= times[2]  # no dial while pending
    assert [r["key"] for r in peer.registers] == [KEY, KEY, KEY]
    assert conn["key"] == NEW_KEY  # the key returned on approval is used from then on


def test_slow_reconnect_fault_waits_the_whole_backoff_list(peer: Peer, spawn) -> None:
    timers = dataclasses.replace(TIMERS, reconnect_backoff=(0.1, 0.2, 0.3, 0.2, 0.2))  # sum 1.0 s
    agent = spawn(peer, timers, SANDBOX_FAULTS="slow-reconnect")
    connected(peer)
    started = agent.log_time("Starting agent")
    assert peer.registers[0]["t"] - started >= 0.95
    assert "Fault slow-reconnect: waiting 1.0s" in agent.log()
    closed_at = peer.close_socket()
    conn = connected(peer, 2)
    assert 0.95 <= conn["t"] - closed_at <= 1.8


def test_missing_api_key_exits_1_with_a_readable_message(spawn) -> None:
    agent = spawn(None, drop=("AGENT_API_KEY",))
    assert agent.proc.wait(15) == 1
    assert "AGENT_API_KEY is required" in agent.log()


def test_unreachable_control_plane_at_start_is_fatal(spawn) -> None:
    agent = spawn(None)  # nothing listens on that port
    assert agent.proc.wait(15) == 1
    log = agent.log()
    assert "registration failed" in log and "Agent error" in log


def test_sigterm_closes_the_socket_and_exits_0_quickly(peer: Peer, spawn) -> None:
    agent = spawn(peer)
    connected(peer)
    wait_until(lambda: peer.of_type("heartbeat"), 5, "heartbeat")
    sent = time.time()
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(3) == 0
    assert time.time() - sent < 1.0
    close = wait_until(lambda: peer.closes and peer.closes[0], 3, "server-side close")
    assert close["code"] == 1000 and not close["by_peer"]  # a clean close frame from the agent
    assert "Received signal: SIGTERM" in agent.log()


def test_sigint_during_pending_approval_exits_0(peer: Peer, spawn) -> None:
    peer.pending_registrations = 1000
    agent = spawn(peer)
    wait_until(lambda: len(peer.registers) >= 2, 10, "re-registration")
    agent.proc.send_signal(signal.SIGINT)
    assert agent.proc.wait(3) == 0
    assert peer.connects == []


# ----------------------------------------------------------------------------------- with Kubernetes
@pytest.fixture
def kube(tmp_path: Path):
    """The sandbox's Kubernetes emulator (a slow kubelet: a start_session then spans a few heartbeats)."""
    kubelet = ContainerRuntime()
    kubelet.ready_delay = 0.5
    kubeconfig = tmp_path / "kubeconfig"
    with emulator(kubeconfig, NAMESPACE, runtime=kubelet):
        import kubernetes

        api = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
        yield {
            "kubeconfig": kubeconfig,
            "apps": kubernetes.client.AppsV1Api(api),
            "core": kubernetes.client.CoreV1Api(api),
            "custom": kubernetes.client.CustomObjectsApi(api),
        }


SESSION = "admin-firefox-1a2b3c4d"
LABELS = {"app": "streamspace-session", "session": SESSION, "user": "admin", "template": "firefox"}
TEMPLATE = {
    "apiVersion": "stream.space/v1alpha1",
    "kind": "Template",
    "metadata": {"name": "firefox", "namespace": NAMESPACE},
    "spec": {
        "displayName": "Firefox",
        "baseImage": "lscr.io/linuxserver/firefox:latest",
        "ports": [{"name": "vnc", "containerPort": 3000}],
        "env": [{"name": "TITLE", "value": "Firefox"}, {"name": "TZ", "value": "Europe/Paris"}],
    },
}


def _start_payload(session_id: str = SESSION, persistent: bool = True) -> Dict[str, Any]:
    return {
        "sessionId": session_id,
        "user": "admin",
        "template": "firefox",
        "templateManifest": TEMPLATE,
        "namespace": NAMESPACE,
        "memory": "512Mi",
        "cpu": "250m",
        "persistentHome": persistent,
        "idleTimeout": "30m",
        "maxSessionDuration": "8h",
        "tags": [],
    }


def _exists(read: Callable[[], Any]) -> bool:
    import kubernetes

    try:
        read()
        return True
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return False
        raise


def test_session_lifecycle_on_kubernetes(peer: Peer, spawn, kube) -> None:
    apps, core, custom = kube["apps"], kube["core"], kube["custom"]
    spawn(peer, KUBECONFIG=str(kube["kubeconfig"]))
    connected(peer)

    # start, then hibernate right behind it: the hibernate is only acknowledged after the start completed
    peer.send(command("cmd-start", "start_session", _start_payload()))
    peer.send(command("cmd-hib", "hibernate_session", {"sessionId": SESSION, "namespace": NAMESPACE}))
    wait_until(lambda: len(peer.for_command("cmd-hib")) == 2, 20, "hibernate answered")
    start = peer.for_command("cmd-start")
    assert [f["msg"]["type"] for f in start] == ["ack", "complete"], start
    assert peer.for_command("cmd-hib")[0]["t"] >= start[1]["t"]
    beats_during = [b for b in peer.of_type("heartbeat") if start[0]["t"] < b["t"] < start[1]["t"]]
    assert beats_during, "heartbeats must keep flowing while a command runs (ready_delay 0.5 s > 0.3 s)"

    result = start[1]["msg"]["payload"]["result"]
    assert result["sessionId"] == SESSION and result["deployment"] == SESSION and result["service"] == SESSION
    assert result["pvc"] == f"{SESSION}-home" and result["vncPort"] == 3000 and result["state"] == "running"
    assert result["podName"].startswith(SESSION)
    status = peer.of_type("status")
    assert len(status) == 1 and status[0]["t"] <= start[1]["t"]
    assert status[0]["msg"] == {
        "type": "status",
        "payload": {
            "sessionId": SESSION,
            "state": "running",
            "vncReady": True,
            "vncPort": 3000,
            "platformMetadata": {"podName": result["podName"], "podIP": result["podIP"]},
        },
    }

    dep = apps.read_namespaced_deployment(SESSION, NAMESPACE)
    assert dep.metadata.labels == LABELS and dep.spec.template.metadata.labels == LABELS
    assert dep.spec.selector.match_labels == {"session": SESSION}
    container = dep.spec.template.spec.containers[0]
    assert container.name == "session" and container.image == TEMPLATE["spec"]["baseImage"]
    assert [(p.name, p.container_port) for p in container.ports] == [("vnc", 3000)]
    assert container.resources.requests == container.resources.limits == {"memory": "512Mi", "cpu": "250m"}
    env = {e.name: e.value for e in container.env}
    assert env == {
        "TITLE": "Firefox",
        "TZ": "UTC",
        "USER": "admin",
        "SESSION_ID": SESSION,
        "PUID": "1000",
        "PGID": "1000",
    }
    assert [(m.name, m.mount_path) for m in container.volume_mounts] == [("user-home", "/config")]
    assert dep.spec.template.spec.volumes[0].persistent_volume_claim.claim_name == f"{SESSION}-home"
    assert dep.spec.replicas == 0  # hibernated

    svc = core.read_namespaced_service(SESSION, NAMESPACE)
    assert svc.metadata.labels == LABELS and svc.spec.selector == {"session": SESSION}
    assert svc.spec.type == "ClusterIP"
    assert [(p.name, p.port, p.target_port) for p in svc.spec.ports] == [("vnc", 3000, 3000)]
    pvc = core.read_namespaced_persistent_volume_claim(f"{SESSION}-home", NAMESPACE)
    assert pvc.metadata.labels == LABELS and pvc.spec.access_modes == ["ReadWriteOnce"]
    assert pvc.spec.storage_class_name == "standard" and pvc.spec.resources.requests == {"storage": "10Gi"}
    cr = custom.get_namespaced_custom_object("stream.space", "v1alpha1", NAMESPACE, "sessions", SESSION)
    assert cr["metadata"]["labels"] == LABELS
    assert cr["spec"]["user"] == "admin" and cr["spec"]["state"] == "running"

    assert peer.for_command("cmd-hib")[1]["msg"]["payload"]["result"] == {
        "sessionId": SESSION,
        "state": "hibernated",
    }

    peer.send(command("cmd-wake", "wake_session", {"sessionId": SESSION, "namespace": NAMESPACE}))
    wake = wait_until(
        lambda: len(peer.for_command("cmd-wake")) == 2 and peer.for_command("cmd-wake"), 20, "wake"
    )
    woke = wake[1]["msg"]
    assert woke["type"] == "complete", woke
    assert woke["payload"]["result"]["state"] == "running" and woke["payload"]["result"]["vncPort"] == 3000
    assert apps.read_namespaced_deployment(SESSION, NAMESPACE).spec.replicas == 1

    peer.send(command("cmd-dup", "start_session", _start_payload()))
    dup = wait_until(lambda: len(peer.for_command("cmd-dup")) == 2 and peer.for_command("cmd-dup"), 10, "dup")
    assert dup[1]["msg"]["type"] == "failed" and "already exists" in dup[1]["msg"]["payload"]["error"]
    assert dup[1]["msg"]["payload"]["error"].startswith("failed to create deployment:")

    peer.send(command("cmd-stop", "stop_session", {"sessionId": SESSION, "namespace": NAMESPACE}))
    stop = wait_until(
        lambda: len(peer.for_command("cmd-stop")) == 2 and peer.for_command("cmd-stop"), 10, "stop"
    )
    assert stop[1]["msg"]["payload"]["result"] == {"sessionId": SESSION, "state": "terminated"}
    wait_until(
        lambda: not _exists(lambda: apps.read_namespaced_deployment(SESSION, NAMESPACE)), 10, "dep gone"
    )
    assert not _exists(lambda: core.read_namespaced_service(SESSION, NAMESPACE))
    assert _exists(lambda: core.read_namespaced_persistent_volume_claim(f"{SESSION}-home", NAMESPACE))
    assert _exists(
        lambda: custom.get_namespaced_custom_object(
            "stream.space", "v1alpha1", NAMESPACE, "sessions", SESSION
        )
    )

    peer.send(
        command(
            "cmd-stop2", "stop_session", {"sessionId": SESSION, "namespace": NAMESPACE, "deletePVC": True}
        )
    )
    wait_until(lambda: len(peer.for_command("cmd-stop2")) == 2, 10, "second stop")
    assert peer.for_command("cmd-stop2")[1]["msg"]["type"] == "complete"  # always success
    wait_until(
        lambda: (
            not _exists(lambda: core.read_namespaced_persistent_volume_claim(f"{SESSION}-home", NAMESPACE))
        ),
        10,
        "pvc gone",
    )


def test_start_without_persistent_home_and_template_fallback(peer: Peer, spawn, kube) -> None:
    apps, core = kube["apps"], kube["core"]
    spawn(peer, KUBECONFIG=str(kube["kubeconfig"]))
    connected(peer)
    payload = _start_payload("admin-firefox-00000002", persistent=False)
    payload.update(
        {"templateManifest": {"spec": {"displayName": "x"}}, "memory": "", "cpu": ""}
    )  # no baseImage
    peer.send(command("cmd-s2", "start_session", payload))
    answer = wait_until(
        lambda: len(peer.for_command("cmd-s2")) == 2 and peer.for_command("cmd-s2"), 15, "answer"
    )
    # no usable manifest and no Template CR in the cluster → failed, nothing created
    assert answer[1]["msg"]["type"] == "failed"
    assert answer[1]["msg"]["payload"]["error"].startswith("failed to get template firefox")
    assert not _exists(lambda: apps.read_namespaced_deployment("admin-firefox-00000002", NAMESPACE))

    payload = _start_payload("admin-firefox-00000003", persistent=False)
    payload.update({"memory": "", "cpu": ""})
    peer.send(command("cmd-s3", "start_session", payload))
    answer = wait_until(
        lambda: len(peer.for_command("cmd-s3")) == 2 and peer.for_command("cmd-s3"), 15, "answer"
    )
    assert answer[1]["msg"]["type"] == "complete", answer[1]["msg"]
    assert answer[1]["msg"]["payload"]["result"]["pvc"] == ""
    dep = apps.read_namespaced_deployment("admin-firefox-00000003", NAMESPACE)
    container = dep.spec.template.spec.containers[0]
    assert container.resources.limits == {"memory": "2Gi", "cpu": "1000m"}
    assert not container.volume_mounts and not dep.spec.template.spec.volumes
    assert not _exists(
        lambda: core.read_namespaced_persistent_volume_claim("admin-firefox-00000003-home", NAMESPACE)
    )


# ------------------------------------------------------------------------------------ configuration
@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        (None, 30.0),
        ("30", 30.0),
        ("30s", 30.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("0", 10.0),
        ("-5s", 10.0),
        ("junk", 30.0),
    ],
)
def test_heartbeat_interval_parsing(raw: Optional[str], seconds: float) -> None:
    from chaosstream.sandbox.agent.config import parse_heartbeat_interval

    assert parse_heartbeat_interval(raw) == pytest.approx(seconds)


def test_config_from_environment() -> None:
    from chaosstream.sandbox.agent.config import ConfigError, load_config

    env = {"AGENT_ID": "a1", "CONTROL_PLANE_URL": "wss://cp.example:8000/", "AGENT_API_KEY": KEY}
    config = load_config(env)
    assert config.http_url == "https://cp.example:8000" and config.namespace == "streamspace"
    assert (
        config.timers.reconnect_backoff == (2.0, 4.0, 8.0, 16.0, 32.0) and config.heartbeat_interval == 30.0
    )
    assert load_config({**env, "CONTROL_PLANE_URL": "ws://x:1"}).http_url == "http://x:1"
    with pytest.raises(ConfigError, match="SANDBOX_FAULTS"):
        load_config({**env, "SANDBOX_FAULTS": "no-such-fault"})
    with pytest.raises(ConfigError, match="ws:// or wss://"):
        load_config({**env, "CONTROL_PLANE_URL": "http://x:1"})
