"""Sessions end to end: create → command → status/complete → states; selector; orphan fault; reconciler."""

import re

import pytest
from helpers.waits import wait_for

S_FIELDS = {"name", "namespace", "user", "template", "state", "persistentHome", "idleTimeout", "maxSessionDuration",
            "createdAt", "platform", "activeConnections", "streamingProtocol", "streamingPort", "streamingPath",
            "status", "resources"}  # fmt: skip


def _running_session(cp, agent, **body):
    created = cp.create_session(**body)
    assert created.status_code == 202, created.text
    command = agent.next_command()
    agent.send("ack", {"commandId": command["commandId"]})
    session_id = created.json()["name"]
    agent.send("status", {"sessionId": session_id, "state": "running", "vncReady": True, "vncPort": 3000,
                          "platformMetadata": {"podName": f"{session_id}-pod", "podIP": "10.0.0.5"}})  # fmt: skip
    agent.send("complete", {"commandId": command["commandId"], "result": {"state": "running"}})
    wait_for(lambda: cp.command(command["commandId"])["status"] == "completed")
    return session_id


def test_full_session_lifecycle(cp):
    agent = cp.agent("k8s-life")
    created = cp.create_session(
        persistentHome=False, resources={"memory": "512Mi", "cpu": "250m"}, tags=["chaos"]
    )
    assert created.status_code == 202
    body = created.json()
    assert re.fullmatch(r"admin-firefox-browser-[0-9a-f]{8}", body["name"])
    assert (
        body["state"] == "pending" and body["persistentHome"] is False and body["namespace"] == "streamspace"
    )
    assert body["resources"] == {"memory": "512Mi", "cpu": "250m"} and body["tags"] == ["chaos"]
    assert body["status"]["phase"] == "Pending"
    assert cp.agent_id_of(created) == "k8s-life"
    command_id = cp.command_id_of(created)
    assert re.fullmatch(r"cmd-[0-9a-f]{8}", command_id)
    assert (
        body["status"]["message"]
        == f"Session provisioning in progress (agent: k8s-life, command: {command_id})"
    )

    command = agent.next_command()
    assert command["commandId"] == command_id and command["action"] == "start_session"
    payload = command["payload"]
    assert payload["sessionId"] == body["name"] and payload["templateManifest"]["kind"] == "Template"
    assert (payload["memory"], payload["cpu"], payload["persistentHome"]) == ("512Mi", "250m", False)
    row = cp.session(body["name"])
    assert (row["state"], row["agent_id"], row["user_id"], row["org_id"]) == (
        "pending",
        "k8s-life",
        "admin",
        "default-org",
    )

    agent.send("ack", {"commandId": command_id})
    agent.send("status", {"sessionId": body["name"], "state": "running", "vncReady": True, "vncPort": 3000,
                          "platformMetadata": {"podName": "pod-1", "podIP": "10.0.0.1"}})  # fmt: skip
    wait_for(lambda: cp.session(body["name"])["state"] == "running")
    got = cp.http.get(f"/api/v1/sessions/{body['name']}", headers=cp.admin).json()
    assert set(got) == S_FIELDS and "id" not in got and "agentId" not in got
    assert got["status"] == {"phase": "Running", "url": f"/api/v1/sessions/{body['name']}/vnc", "podName": "pod-1",
                             "lastActivity": got["status"]["lastActivity"]}  # fmt: skip
    assert got["streamingProtocol"] == "vnc" and got["platform"] == "kubernetes"
    listed = cp.http.get("/api/v1/sessions?user=admin", headers=cp.admin).json()
    assert listed["total"] == 1 and listed["sessions"][0]["name"] == body["name"]
    assert cp.http.get("/api/v1/sessions?user=user1", headers=cp.admin).json() == {"sessions": [], "total": 0}
    agent.send("complete", {"commandId": command_id, "result": {"podName": "pod-1", "state": "running"}})

    # wake needs hibernated; hibernate → complete → hibernated; wake → complete → running
    assert cp.http.put(f"/api/v1/sessions/{body['name']}/wake", headers=cp.admin).status_code == 409
    for verb, transitional, final in (
        ("hibernate", "hibernating", "hibernated"),
        ("wake", "waking", "running"),
    ):
        response = cp.http.put(f"/api/v1/sessions/{body['name']}/{verb}", headers=cp.admin)
        assert response.status_code == 202 and set(response.json()) == {"name", "commandId", "message"}
        assert cp.session(body["name"])["state"] == transitional
        agent.complete(agent.next_command())
        wait_for(lambda final=final: cp.session(body["name"])["state"] == final)
    assert cp.http.put(f"/api/v1/sessions/{body['name']}/wake", headers=cp.admin).status_code == 409

    deleted = cp.http.delete(f"/api/v1/sessions/{body['name']}", headers=cp.admin)
    assert deleted.status_code == 202
    assert cp.session(body["name"])["state"] == "terminating"
    assert cp.http.delete(f"/api/v1/sessions/{body['name']}", headers=cp.admin).status_code == 409
    stop = agent.next_command()
    assert stop["action"] == "stop_session" and stop["payload"]["sessionId"] == body["name"]
    agent.complete(stop, {"sessionId": body["name"], "state": "terminated"})
    wait_for(lambda: cp.session(body["name"])["state"] == "terminated")
    assert cp.session(body["name"])["terminated_at"] is not None
    assert cp.http.put(f"/api/v1/sessions/{body['name']}/hibernate", headers=cp.admin).status_code == 409
    assert cp.http.delete(f"/api/v1/sessions/{body['name']}", headers=cp.admin).status_code == 409


def test_defaults_and_failed_start(cp):
    agent = cp.agent("k8s-def")
    created = cp.create_session(user="user1")
    assert created.json()["persistentHome"] is True and created.json()["resources"] == {
        "memory": "2Gi",
        "cpu": "1000m",
    }
    command = agent.next_command()
    agent.send("failed", {"commandId": command["commandId"], "error": "timeout waiting for pod"})
    wait_for(lambda: cp.session(created.json()["name"])["state"] == "failed")
    assert cp.command(command["commandId"])["error_message"] == "timeout waiting for pod"


def test_selector_least_loaded_and_fresh_only(cp):
    busy, idle = cp.agent("k8s-busy"), cp.agent("k8s-idle")
    cp.sql.run(
        "UPDATE agents SET last_heartbeat = last_heartbeat - interval '1 second' WHERE agent_id = 'k8s-idle'"
    )
    for agent in (busy, idle):
        agent.heartbeats_on.clear()  # freeze heartbeats so the tie-break is deterministic
    first = cp.create_session()
    busy_first = cp.agent_id_of(first)
    assert busy_first == "k8s-busy"  # tie → most recent heartbeat
    second = cp.create_session()
    assert cp.agent_id_of(second) == "k8s-idle"  # fewest sessions wins
    # an agent whose heartbeat is older than the selector window is ignored, even if 'online'
    cp.sql.run("UPDATE agents SET last_heartbeat = (now() at time zone 'utc') - interval '1 hour'"
               " WHERE agent_id = 'k8s-idle'")  # fmt: skip
    cp.sql.run("UPDATE sessions SET state = 'terminated' WHERE agent_id = 'k8s-idle'")
    assert cp.agent_id_of(cp.create_session()) == "k8s-busy"
    cp.sql.run("UPDATE agents SET status = 'offline' WHERE agent_id = 'k8s-busy'")
    assert cp.create_session().status_code == 503


@pytest.mark.controlplane(faults=["place-on-stale-agents"])
def test_fault_place_on_stale_agents(cp):
    gone = cp.agent("k8s-gone")
    gone.drop()
    wait_for(lambda: cp.agent_status("k8s-gone") == "offline", timeout=3)
    created = cp.create_session()
    assert created.status_code == 202 and cp.agent_id_of(created) == "k8s-gone"
    assert cp.command(cp.command_id_of(created))["status"] == "pending"  # nobody to send it to


@pytest.mark.controlplane(faults=["orphan-sessions-on-agent-restart"])
def test_fault_orphan_sessions_on_agent_restart(cp):
    agent = cp.agent("k8s-orphan")
    session_id = _running_session(cp, agent, persistentHome=False)
    agent.drop()
    wait_for(lambda: cp.session(session_id)["agent_id"] is None, timeout=3)
    conflict = cp.http.delete(f"/api/v1/sessions/{session_id}", headers=cp.admin)
    assert conflict.status_code == 409 and conflict.json()["error"] == "Session has no agent assigned"


def test_baseline_keeps_agent_on_disconnect_and_blocks_agent_delete(cp):
    agent = cp.agent("k8s-keep")
    session_id = _running_session(cp, agent)
    agent.drop()
    wait_for(lambda: cp.agent_status("k8s-keep") == "offline", timeout=3)
    assert cp.session(session_id)["agent_id"] == "k8s-keep"
    blocked = cp.http.delete("/api/v1/admin/agents/k8s-keep", headers=cp.admin)
    assert blocked.status_code == 500 and blocked.json()["error"] == "Failed to deregister agent"


def test_reconciler(cp):
    connected = cp.agent("k8s-here")
    stuck = _running_session(cp, connected)
    forced = _running_session(cp, connected)
    gone = cp.agent("k8s-gone")
    pending = cp.create_session()
    assert cp.agent_id_of(pending) == "k8s-gone"  # least loaded
    cp.sql.run("UPDATE sessions SET agent_id = 'k8s-gone' WHERE id = %s", (forced,))
    gone.drop()
    wait_for(lambda: cp.agent_status("k8s-gone") == "offline", timeout=3)
    for session_id in (stuck, forced):
        assert cp.http.delete(f"/api/v1/sessions/{session_id}", headers=cp.admin).status_code == 202
    old = "(now() at time zone 'utc') - interval '1 hour'"
    cp.sql.run(
        f"UPDATE sessions SET updated_at = {old} WHERE id = ANY(%s)",
        ([stuck, forced, pending.json()["name"]],),
    )

    # stuck terminating + agent connected → a new stop_session (cmd-<uuid>) arrives
    def resent():
        rows = cp.sql.all("SELECT command_id FROM agent_commands WHERE session_id = %s AND action = 'stop_session'",
                          (stuck,))  # fmt: skip
        return len(rows) >= 2 and any(len(r["command_id"]) == 40 for r in rows)

    wait_for(resent, timeout=4)
    wait_for(lambda: cp.session(forced)["state"] == "terminated", timeout=4)
    row = cp.session(forced)
    assert row["termination_reason"] == "agent_unavailable" and row["terminated_at"] is not None
    wait_for(lambda: cp.session(pending.json()["name"])["state"] == "failed", timeout=4)


@pytest.mark.controlplane(migrations=False)
def test_reconciler_without_migration_007(cp):
    agent = cp.agent("k8s-nomig")
    session_id = _running_session(cp, agent)
    assert cp.http.delete(f"/api/v1/sessions/{session_id}", headers=cp.admin).status_code == 202
    agent.drop()
    cp.sql.run("UPDATE sessions SET updated_at = updated_at - interval '1 hour' WHERE id = %s", (session_id,))
    wait_for(lambda: cp.session(session_id)["state"] == "terminated", timeout=4)
    assert "termination_reason" not in cp.session(session_id)
