"""VNC through the whole sandbox, every part real: a browser-like client (websocket-client, RFB 3.8 in
base64 TEXT frames) → control plane `/api/v1/vnc/:sessionId` → the agent process's tunnel (the real
kubernetes client's WebSocket port-forward) → the emulator's `pods/portforward` → the session pod's RFB
desktop. The sandbox's own record (`/sandbox/v1/streams`) must agree with what the client saw."""

import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from helpers.vnc import VncStream, connect_status
from helpers.waits import wait_for
from kubernetes import client, config

NS = "streamspace"
TOLERANCE = 0.5  # s: the record is written by the control plane as it writes to the client's socket


def _epoch(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Env:
    def __init__(self, env):
        self.env = env
        self.api = env["STREAMSPACE_API_URL"]
        self.http = httpx.Client(base_url=self.api, timeout=10)
        login = {"username": "admin", "password": env["STREAMSPACE_PASSWORD"]}
        self.token = self.http.post("/api/v1/auth/login", json=login).json()["token"]
        self.headers = {"Authorization": f"Bearer {self.token}"}
        self.core = client.CoreV1Api(config.new_client_from_config(config_file=env["KUBECONFIG"]))

    def session(self) -> str:
        body = {"user": "admin", "template": "firefox-browser", "persistentHome": False}
        created = self.http.post("/api/v1/sessions", json=body, headers=self.headers)
        assert created.status_code == 202, created.text
        return created.json()["name"]

    def state(self, session_id):
        return self.http.get(f"/api/v1/sessions/{session_id}", headers=self.headers).json().get("state")

    def running(self, session_id):
        wait_for(lambda: self.state(session_id) == "running", 30, f"session {session_id} running")

    def stream(self, session_id) -> VncStream:
        return VncStream(self.api, session_id, self.token)

    def records(self, session_id):
        return self.http.get("/sandbox/v1/streams", params={"session_id": session_id}).json()["streams"]


def _sandbox(**options):
    from chaosstream.sandbox.daemon.client import start_daemon, stop_daemon

    state = Path(tempfile.mkdtemp(prefix="css-vnc-"))
    try:
        yield Env(start_daemon(state, parent_pid=os.getpid(), tenants=False, **options))
    finally:
        stop_daemon(state)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def sandbox():
    yield from _sandbox()


def test_banner_through_the_full_path_and_the_record_agrees(sandbox):
    session_id = sandbox.session()
    status, body = connect_status(sandbox.api, session_id, sandbox.token)
    assert status == 409 and b"Session is not running" in body  # vnc_proxy.go:163-169
    sandbox.running(session_id)
    stream = sandbox.stream(session_id)
    assert stream.handshake() == (b"RFB 003.008\n", 1024, 768)
    assert stream.update(incremental=False) == 4 + 12 + 8 * 8 * 4
    for _ in range(3):  # the desktop answers incremental requests at its frame rate (0.1 s fast)
        stream.update()
    (record,) = [r for r in sandbox.records(session_id) if r["closedAt"] is None]
    assert record["bytesToClient"] == stream.received and record["framesToClient"] == stream.frames
    assert abs(_epoch(record["firstBytesAt"]) - stream.arrivals[0]) < TOLERANCE
    assert abs(_epoch(record["lastBytesAt"]) - stream.arrivals[-1]) < TOLERANCE
    # one connection per session: a second one gets its own desktop connection, the first is dropped
    second = sandbox.stream(session_id)
    assert second.handshake()[0] == b"RFB 003.008\n"
    assert stream.closed_by_server(5)
    second.update()
    second.close()


def test_agent_restart_cuts_the_stream_and_a_new_connection_works(sandbox):
    """Intended (seed 1.2): the agent's socket dies → the UI socket is closed; once the new agent pod is
    connected, a new UI connection gets a fresh tunnel. Meanwhile the proxy answers 503 (no agent)."""
    session_id = sandbox.session()
    sandbox.running(session_id)
    stream = sandbox.stream(session_id)
    stream.handshake()
    stream.update()
    (agent_pod,) = sandbox.core.list_namespaced_pod(
        NS, label_selector="app.kubernetes.io/component=k8s-agent"
    ).items
    sandbox.core.delete_namespaced_pod(agent_pod.metadata.name, NS)
    assert stream.closed_by_server(15), "the stream outlived its agent's socket"
    last_before = stream.arrivals[-1]
    statuses = set()
    deadline = time.monotonic() + 30
    while True:
        status, body = connect_status(sandbox.api, session_id, sandbox.token)
        if status != 503:
            break
        statuses.add(body)
        assert time.monotonic() < deadline, "no agent came back"
        time.sleep(0.05)
    assert b'{"error": "Agent k8s-sandbox-1 is not connected"}' in statuses
    again = sandbox.stream(session_id)
    # the new agent process may still be importing the kubernetes client (seconds on a loaded machine)
    assert again.handshake(timeout=20)[0] == b"RFB 003.008\n"
    client_outage = again.arrivals[0] - last_before
    records = sandbox.records(session_id)
    (old,) = [r for r in records if r["closeReason"] == "agent k8s-sandbox-1 disconnected"]
    new = records[-1]
    assert _epoch(old["lastBytesAt"]) <= _epoch(old["closedAt"]) <= _epoch(new["openedAt"])
    recorded_outage = _epoch(new["firstBytesAt"]) - _epoch(old["lastBytesAt"])
    assert abs(recorded_outage - client_outage) < TOLERANCE, (recorded_outage, client_outage)
    print(f"agent restart: stream outage {client_outage:.2f}s (record {recorded_outage:.2f}s)")
    again.close()


def test_session_pod_loss_ends_the_stream_until_the_new_pod_serves(sandbox):
    session_id = sandbox.session()
    sandbox.running(session_id)
    stream = sandbox.stream(session_id)
    stream.handshake()
    (pod,) = sandbox.core.list_namespaced_pod(NS, label_selector=f"session={session_id}").items
    sandbox.core.delete_namespaced_pod(pod.metadata.name, NS, grace_period_seconds=0)
    assert stream.closed_by_server(10), "the stream outlived its pod"
    record = wait_for(lambda: [r for r in sandbox.records(session_id) if r["closedAt"]])[-1]
    assert record["closeReason"].startswith("vnc_error: VNC tunnel closed")

    def served():
        try:
            s = sandbox.stream(session_id)
            return s if s.handshake(timeout=2)[0] == b"RFB 003.008\n" else None
        except Exception:  # noqa: BLE001 - the replacement pod is not running yet (vnc_error)
            return None

    wait_for(served, 30, "a stream from the replacement pod").close()
    assert sandbox.state(session_id) == "running"


@pytest.fixture(scope="module")
def rbac_sandbox():
    yield from _sandbox(faults=("vnc-tunnel-rbac",))


def test_vnc_tunnel_rbac_sessions_run_and_every_stream_fails(rbac_sandbox):
    """The documented defect (.claude/reports/P0_MANIFEST_001_VALIDATION_RESULTS.md:252): the agent's Role
    lacks pods/portforward, the session runs, the tunnel is refused (403) → vnc_error → the UI socket closes."""
    session_id = rbac_sandbox.session()
    rbac_sandbox.running(session_id)
    stream = rbac_sandbox.stream(session_id)
    assert stream.closed_by_server(10)
    assert stream.received == 0
    (record,) = wait_for(lambda: [r for r in rbac_sandbox.records(session_id) if r["closedAt"]])
    assert record["firstBytesAt"] is None
    assert (
        "forbidden" in record["closeReason"]
        and 'cannot get resource "pods/portforward"' in record["closeReason"]
    )
    assert rbac_sandbox.state(session_id) == "running"


@pytest.fixture(scope="module")
def as_built_sandbox():
    yield from _sandbox(profile="as-built")


def test_as_built_a_session_streams_once(as_built_sandbox):
    """As built the tunnel opens once, 2 s (scaled) after start_session (agent_handlers.go:142-147,
    agent_vnc_handler.go:150-172); the proxy sends vnc_close when the UI leaves (vnc_proxy.go:304), the
    agent closes the tunnel (agent_vnc_handler.go:81) and nothing opens another: a reconnecting browser's
    socket stays open and silent (agent_vnc_tunnel.go:189-196 only logs "tunnel not found")."""
    sandbox = as_built_sandbox
    session_id = sandbox.session()
    sandbox.running(session_id)
    first = sandbox.stream(session_id)
    assert first.handshake(timeout=10)[0] == b"RFB 003.008\n"
    first.update()
    first.close()
    wait_for(lambda: all(r["closedAt"] for r in sandbox.records(session_id)))
    second = sandbox.stream(session_id)
    assert not second.closed_by_server(2.0), "as built the socket stays open"
    assert second.received == 0, "a second stream got bytes: the tunnel was reopened"
    record = sandbox.records(session_id)[-1]
    assert record["closedAt"] is None and record["firstBytesAt"] is None
    second.close()
