"""Agent WebSocket and AgentHub: connect errors, heartbeat → online, disconnect and stale sweep → offline."""

import time

import pytest
import websocket
from helpers.waits import wait_for


def _handshake_status(cp, query: str, key) -> int:
    headers = [f"X-Agent-API-Key: {key}"] if key else []
    try:
        websocket.create_connection(
            f"{cp.ws_url}/api/v1/agents/connect{query}", header=headers, timeout=3
        ).close()
    except websocket.WebSocketBadStatusException as exc:
        return exc.status_code
    return 101


def test_connect_errors(cp):
    key = cp.config.bootstrap_key
    assert _handshake_status(cp, "", key) == 400
    assert _handshake_status(cp, "?agent_id=ghost", key) == 404
    cp.register("k8s-ws")
    assert _handshake_status(cp, "?agent_id=k8s-ws", None) == 401
    assert _handshake_status(cp, "?agent_id=k8s-ws", "zz") == 401


def test_heartbeat_online_then_disconnect_offline(cp):
    agent = cp.agent("k8s-ws")
    before = cp.sql.one("SELECT last_heartbeat FROM agents WHERE agent_id = 'k8s-ws'")["last_heartbeat"]
    wait_for(
        lambda: (
            cp.sql.one("SELECT last_heartbeat FROM agents WHERE agent_id='k8s-ws'")["last_heartbeat"] > before
        )
    )
    agent.send("heartbeat", "not-an-object")  # dropped, connection survives
    assert cp.agent_status("k8s-ws") == "online"
    agent.drop()
    wait_for(lambda: cp.agent_status("k8s-ws") == "offline", timeout=3)
    events = cp.http.get("/sandbox/v1/events?agent_id=k8s-ws").json()["events"]
    assert [(e["status"], e["reason"]) for e in events] == [
        ("online", "connected"),
        ("offline", "disconnected"),
    ]
    assert events[0]["connectionId"] == events[1]["connectionId"]


def test_stale_sweep_marks_offline_and_closes(cp):
    agent = cp.agent("k8s-stale")
    agent.heartbeats_on.clear()  # socket stays open and answers pings, but no heartbeat messages
    silent_since = time.monotonic()
    wait_for(lambda: cp.agent_status("k8s-stale") == "offline", timeout=4)
    elapsed = time.monotonic() - silent_since
    timers = cp.config.timers
    assert elapsed <= timers.stale_threshold + timers.sweep_interval + timers.heartbeat_interval + 0.5
    wait_for(lambda: agent.closed_by_server, timeout=3)
    reasons = [e["reason"] for e in cp.http.get("/sandbox/v1/events?agent_id=k8s-stale").json()["events"]]
    assert reasons == ["connected", "stale"]


@pytest.mark.controlplane(faults=["no-heartbeat-sweep"])
def test_no_heartbeat_sweep_keeps_silent_agent_online(cp):
    agent = cp.agent("k8s-silent")
    agent.heartbeats_on.clear()
    t = cp.config.timers
    time.sleep(max(t.stale_threshold, t.ws_read_deadline) + 2 * t.sweep_interval + 0.3)
    assert cp.agent_status("k8s-silent") == "online" and not agent.closed_by_server


def test_reconnect_replaces_old_socket_without_unregistering_new(cp):
    old = cp.agent("k8s-re")
    new = cp.agent("k8s-re", register=False)
    wait_for(lambda: old.closed_by_server, timeout=3)
    time.sleep(0.3)
    assert cp.agent_status("k8s-re") == "online"
    statuses = [e["status"] for e in cp.http.get("/sandbox/v1/events?agent_id=k8s-re").json()["events"]]
    assert statuses == ["online", "online"]  # the replaced socket did not mark the agent offline
    body = {"action": "stop_session", "sessionId": "s-x"}
    assert cp.http.post("/api/v1/admin/agents/k8s-re/command", json=body, headers=cp.admin).status_code == 201
    assert new.next_command()["action"] == "stop_session"


def test_read_deadline_without_pongs(cp):
    """A socket that neither heartbeats nor answers pings hits the read deadline (or the sweep)."""
    cp.register("k8s-mute")
    url = f"{cp.ws_url}/api/v1/agents/connect?agent_id=k8s-mute"
    ws = websocket.create_connection(url, header=[f"X-Agent-API-Key: {cp.config.bootstrap_key}"], timeout=5)
    try:
        wait_for(lambda: cp.agent_status("k8s-mute") == "online")
        wait_for(lambda: cp.agent_status("k8s-mute") == "offline", timeout=4)
    finally:
        ws.abort()
