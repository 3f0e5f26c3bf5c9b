"""Profile ``as-built``: the control plane answers as StreamSpace v2's Go code does (each test cites it).

Every test sends the real request (HTTP, or the agent's WebSocket messages) and checks the answer; the
matching ``intended`` behaviour is checked alongside where it differs, so both profiles stay honest.
"""

import pytest
from helpers.waits import wait_for

from chaosstream.sandbox.profile import AS_BUILT

as_built = pytest.mark.controlplane(profile=AS_BUILT, preapproved_agents=frozenset({"k8s-ab"}))


def _start(cp, agent, user="admin", **body):
    """Create a session and drive it to ``running`` the way the k8s agent does (ack, status, complete)."""
    created = cp.create_session(user=user, **body)
    assert created.status_code == 202, created.text
    command = agent.next_command()
    session_id = created.json()["name"]
    agent.send("ack", {"commandId": command["commandId"]})
    agent.send("status", {"sessionId": session_id, "state": "running", "vncReady": True, "vncPort": 3000,
                          "platformMetadata": {"podName": f"{session_id}-pod", "podIP": "10.0.0.5"}})  # fmt: skip
    agent.send("complete", {"commandId": command["commandId"], "result": {"state": "running"}})
    wait_for(lambda: cp.command(command["commandId"])["status"] == "completed")
    wait_for(lambda: cp.session(session_id)["state"] == "running")
    return session_id


@as_built
def test_delete_stays_terminating_after_the_agents_complete(cp):
    """agent_websocket.go:420-440: `complete` updates agent_commands only; agent_handlers.go:199-247 sends no
    status after stop, so the row stays `terminating` and GET keeps answering it."""
    agent = cp.agent("k8s-ab")
    session_id = _start(cp, agent)
    deleted = cp.http.delete(f"/api/v1/sessions/{session_id}", headers=cp.admin)
    assert deleted.status_code == 202 and set(deleted.json()) == {"name", "commandId", "message"}
    stop = agent.next_command()
    assert stop["action"] == "stop_session"
    agent.complete(stop, {"sessionId": session_id, "state": "terminated"})
    wait_for(lambda: cp.command(stop["commandId"])["status"] == "completed")
    got = cp.http.get(f"/api/v1/sessions/{session_id}", headers=cp.admin)
    assert got.status_code == 200 and got.json()["state"] == "terminating"
    assert cp.session(session_id)["state"] == "terminating"
    again = cp.http.delete(f"/api/v1/sessions/{session_id}", headers=cp.admin)  # handlers.go DeleteSession
    assert again.status_code == 409
    assert again.json() == {
        "error": "Session already terminating",
        "message": "Session is already in terminating state",
    }


@as_built
def test_hibernate_stays_hibernating_and_wake_is_409(cp):
    """agent_websocket.go:420-440 (complete leaves the row) and handlers.go:1350-1357 (wake needs
    `hibernated`)."""
    agent = cp.agent("k8s-ab")
    session_id = _start(cp, agent)
    assert cp.http.put(f"/api/v1/sessions/{session_id}/hibernate", headers=cp.admin).status_code == 202
    command = agent.next_command()
    agent.complete(command, {"sessionId": session_id, "state": "hibernated"})
    wait_for(lambda: cp.command(command["commandId"])["status"] == "completed")
    assert cp.http.get(f"/api/v1/sessions/{session_id}", headers=cp.admin).json()["state"] == "hibernating"
    wake = cp.http.put(f"/api/v1/sessions/{session_id}/wake", headers=cp.admin)
    assert wake.status_code == 409
    assert wake.json() == {
        "error": "Invalid session state",
        "message": "Session must be in 'hibernated' state to wake, currently: hibernating",
    }
    assert agent.no_frame(0.3)  # no command was created for the refused wake


@pytest.mark.controlplane(preapproved_agents=frozenset({"k8s-ab"}))
def test_intended_profile_still_reaches_terminated_and_hibernated(cp):
    agent = cp.agent("k8s-ab")
    session_id = _start(cp, agent)
    assert cp.http.put(f"/api/v1/sessions/{session_id}/hibernate", headers=cp.admin).status_code == 202
    agent.complete(agent.next_command(), {"state": "hibernated"})
    wait_for(lambda: cp.session(session_id)["state"] == "hibernated")
    assert cp.http.delete(f"/api/v1/sessions/{session_id}", headers=cp.admin).status_code == 202
    agent.complete(agent.next_command(), {"state": "terminated"})
    wait_for(lambda: cp.session(session_id)["state"] == "terminated")


@as_built
def test_default_quota_refuses_the_fifth_1000m_session_for_any_user(cp):
    """enforcer.go:190-206 (defaults for every user: users.go:226-236 loads no quota row) and :305-308
    (total CPU message); handlers.go:727-777 (403 Quota exceeded; running rows count)."""
    agent = cp.agent("k8s-ab")
    for _ in range(4):
        _start(cp, agent, resources={"cpu": "1000m", "memory": "1Gi"})
    refused = cp.create_session(resources={"cpu": "1000m", "memory": "1Gi"})
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "Quota exceeded",
        "message": "total CPU quota exceeded: would use 5000m, limit is 4000m",
    }
    # another user has a quota of his own
    assert cp.create_session(user="user1", resources={"cpu": "1000m", "memory": "1Gi"}).status_code == 202
    # per-session limits: 2000m / 4096Mi
    too_big = cp.create_session(user="user1", resources={"cpu": "2500m", "memory": "1Gi"})
    assert too_big.status_code == 403
    assert too_big.json()["message"] == "CPU quota exceeded: requested 2500m, limit is 2000m per session"


@as_built
def test_default_quota_pending_rows_do_not_count_and_memory_total(cp):
    """handlers.go:727-777 counts running/starting/hibernated/waking only; the memory total is 8192Mi."""
    agent = cp.agent("k8s-ab")
    for _ in range(2):
        _start(cp, agent, resources={"cpu": "500m", "memory": "4Gi"})
    refused = cp.create_session(resources={"cpu": "500m", "memory": "1Gi"})
    assert refused.status_code == 403
    assert refused.json()["message"] == "total memory quota exceeded: would use 9216Mi, limit is 8192Mi"
    cp.sql.run("UPDATE sessions SET state = 'pending'")
    assert cp.create_session(resources={"cpu": "500m", "memory": "1Gi"}).status_code == 202


@as_built
def test_unknown_user_is_quota_exceeded(cp):
    """enforcer.go GetUserLimits fails on the username lookup → handlers.go:727-777 answers 403."""
    cp.agent("k8s-ab")
    response = cp.create_session(user="nobody-here")
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "Quota exceeded" and body["message"].startswith("failed to get user limits")


@pytest.mark.controlplane(preapproved_agents=frozenset({"k8s-ab"}))
def test_intended_profile_has_no_quota_and_unknown_user_is_404(cp):
    agent = cp.agent("k8s-ab")
    for _ in range(5):
        assert cp.create_session(resources={"cpu": "1000m"}).status_code == 202
        agent.next_command()
    assert cp.create_session(user="nobody-here").status_code == 404


@as_built
def test_wire_details_as_gin_answers(cp):
    """api/cmd/main.go:245 (gin.New: unknown route and wrong method are `404 page not found`),
    auth/handlers.go:236-241 (login 400 body), GetAgent without approval_status, CreateSession's nil tags."""
    for method, path in (("GET", "/api/v1/nothing-here"), ("PATCH", "/api/v1/sessions"),
                         ("GET", "/api/v1/auth/login")):  # fmt: skip
        response = cp.http.request(method, path, headers=cp.admin)
        assert response.status_code == 404, (method, path)
        assert response.text == "404 page not found"
        assert response.headers["content-type"].startswith("text/plain")
    login = cp.http.post("/api/v1/auth/login", json={"username": "admin"})
    assert login.status_code == 400 and login.json() == {"error": "Invalid request body"}
    agent = cp.agent("k8s-ab")
    got = cp.http.get("/api/v1/admin/agents/k8s-ab", headers=cp.admin)
    assert got.status_code == 200 and got.json()["approvalStatus"] == ""
    created = cp.create_session()
    assert created.status_code == 202 and created.json()["tags"] is None
    agent.next_command()
    tagged = cp.create_session(tags=["chaos"])
    assert tagged.json()["tags"] == ["chaos"]


def test_intended_wire_details(cp):
    assert cp.http.patch("/api/v1/sessions", headers=cp.admin).status_code == 405
    login = cp.http.post("/api/v1/auth/login", json={"username": "admin"})
    assert login.status_code == 400 and login.json()["error"] == "Validation failed"


@as_built
def test_pending_sessions_pass_the_quota_running_ones_count(cp):
    """handlers.go:727-777: six sessions created back to back are all accepted (pending is not counted);
    once they run, the next is `session quota exceeded: 6/5` (enforcer.go CheckSessionCreation)."""
    agent = cp.agent("k8s-ab")
    names = []
    for _ in range(6):
        created = cp.create_session()
        assert created.status_code == 202, created.text
        names.append(created.json()["name"])
    for name in names:
        agent.next_command()
        agent.send("status", {"sessionId": name, "state": "running", "vncReady": True, "vncPort": 3000,
                              "platformMetadata": {"podName": f"{name}-pod", "podIP": "10.0.0.5"}})  # fmt: skip
    wait_for(lambda: all(cp.session(n)["state"] == "running" for n in names))
    refused = cp.create_session()
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "Quota exceeded",
        "message": "session quota exceeded: 6/5 sessions active",
    }
