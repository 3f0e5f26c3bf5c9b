"""Dispatcher: pending → sent → ack → completed/failed; behaviour while the agent is away; frame batching."""

import json

import pytest
from helpers.waits import wait_for


def _command(cp, agent_id: str, session_id: str) -> str:
    """Insert a stop_session command while the agent is away (via DELETE of a session placed on it)."""
    now = "(now() at time zone 'utc')"
    cp.sql.run(
        "INSERT INTO sessions (id, user_id, template_name, state, agent_id, namespace, created_at, updated_at)"
        f" VALUES (%s, 'admin', 'firefox-browser', 'running', %s, 'streamspace', {now}, {now})",
        (session_id, agent_id),
    )
    response = cp.http.delete(f"/api/v1/sessions/{session_id}", headers=cp.admin)
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"name", "commandId", "message"} and body["name"] == session_id
    return body["commandId"]


def _away_agent(cp, agent_id: str):
    agent = cp.agent(agent_id)
    agent.drop()
    wait_for(lambda: cp.agent_status(agent_id) == "offline", timeout=3)
    return agent


def test_admin_command_lifecycle(cp):
    agent = cp.agent("k8s-c")
    response = cp.http.post(
        "/api/v1/admin/agents/k8s-c/command",
        json={"action": "hibernate_session", "sessionId": "s-1", "payload": {"namespace": "streamspace"}},
        headers=cp.admin,
    )
    assert response.status_code == 201
    command = response.json()
    assert {"id", "commandId", "agentId", "sessionId", "action", "payload", "status", "createdAt"} <= set(
        command
    )
    assert command["commandId"].startswith("cmd-") and len(command["commandId"]) == 40  # cmd- + UUID
    received = agent.next_command()
    assert received == {"commandId": command["commandId"], "action": "hibernate_session",
                        "payload": {"namespace": "streamspace"}}  # fmt: skip
    row = cp.command(command["commandId"])
    assert row["status"] == "sent" and row["sent_at"] is not None
    agent.send("ack", {"commandId": command["commandId"]})
    wait_for(lambda: cp.command(command["commandId"])["status"] == "ack")
    agent.send("complete", {"commandId": command["commandId"], "result": {"state": "hibernated"}})
    wait_for(lambda: cp.command(command["commandId"])["status"] == "completed")
    row = cp.command(command["commandId"])
    assert row["acknowledged_at"] and row["completed_at"] and row["updated_at"] >= row["created_at"]


def test_ack_from_another_agent_is_ignored(cp):
    owner, other = cp.agent("k8s-owner"), cp.agent("k8s-other")
    body = {"action": "stop_session", "sessionId": "s-2"}
    command_id = cp.http.post("/api/v1/admin/agents/k8s-owner/command", json=body, headers=cp.admin).json()[
        "commandId"
    ]
    owner.next_command()
    other.send("failed", {"commandId": command_id, "error": "not mine"})
    owner.send("failed", {"commandId": command_id, "error": "boom"})
    wait_for(lambda: cp.command(command_id)["status"] == "failed")
    assert cp.command(command_id)["error_message"] == "boom"


def test_baseline_keeps_pending_and_replays_oldest_first(cp):
    agent = _away_agent(cp, "k8s-away")
    first = _command(cp, "k8s-away", "admin-firefox-browser-00000001")
    second = _command(cp, "k8s-away", "admin-firefox-browser-00000002")
    assert cp.command(first)["status"] == cp.command(second)["status"] == "pending"
    agent.connect()
    got = [agent.next_command()["commandId"], agent.next_command()["commandId"]]
    assert got == [first, second]
    assert cp.command(first)["status"] == "sent"


@pytest.mark.controlplane(faults=["fail-commands-while-disconnected"])
def test_fault_fails_commands_while_disconnected(cp):
    agent = _away_agent(cp, "k8s-away")
    command_id = _command(cp, "k8s-away", "admin-firefox-browser-00000003")
    row = cp.command(command_id)
    assert row["status"] == "failed" and row["error_message"] == "agent is not connected"
    agent.connect()
    assert agent.no_frame(0.5)
    assert cp.session("admin-firefox-browser-00000003")["state"] == "terminating"  # stuck


@pytest.mark.controlplane(faults=["no-replay-on-reconnect"])
def test_fault_no_replay_on_reconnect(cp):
    agent = _away_agent(cp, "k8s-away")
    command_id = _command(cp, "k8s-away", "admin-firefox-browser-00000004")
    agent.connect()
    wait_for(lambda: cp.agent_status("k8s-away") == "online")
    assert agent.no_frame(0.5)
    assert cp.command(command_id)["status"] == "pending"


@pytest.mark.controlplane(faults=["batched-frames"])
def test_fault_batched_frames_joins_queued_messages(cp):
    agent = _away_agent(cp, "k8s-away")
    ids = [_command(cp, "k8s-away", f"admin-firefox-browser-0000000{i}") for i in (5, 6)]
    agent.connect()
    frame = agent.next_frame()
    lines = frame.split("\n")
    assert len(lines) == 2
    with pytest.raises(json.JSONDecodeError):
        json.loads(frame)  # what the real agent does with it
    assert [json.loads(line)["payload"]["commandId"] for line in lines] == ids


def test_baseline_one_frame_per_message(cp):
    agent = _away_agent(cp, "k8s-away")
    for i in (7, 8):
        _command(cp, "k8s-away", f"admin-firefox-browser-0000000{i}")
    agent.connect()
    frames = [agent.next_frame(), agent.next_frame()]
    assert all(json.loads(f)["type"] == "command" for f in frames)


@pytest.mark.controlplane(migrations=False)
def test_without_migrations_commands_still_progress(cp):
    agent = cp.agent("k8s-nomig")
    body = {"action": "stop_session", "sessionId": "s-3"}
    command_id = cp.http.post("/api/v1/admin/agents/k8s-nomig/command", json=body, headers=cp.admin).json()[
        "commandId"
    ]
    agent.complete(agent.next_command())
    wait_for(lambda: cp.command(command_id)["status"] == "completed")
    assert "updated_at" not in cp.command(command_id)
