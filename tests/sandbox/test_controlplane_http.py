"""HTTP endpoints of the sandbox control plane: shapes and status codes of docs/streamspace.md#2-http-api."""

import re
import secrets

import pytest

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
AGENT_FIELDS = {"id", "agentId", "platform", "region", "status", "capacity", "lastHeartbeat", "metadata",
                "approvalStatus", "createdAt", "updatedAt"}  # fmt: skip


def test_health_version_login(cp):
    assert cp.http.get("/health").json() == {"status": "healthy", "service": "streamspace-api"}
    assert cp.http.get("/version").json() == {"version": "v0.1.0", "api": "v1", "phase": "2.2"}
    ok = cp.login("admin", "admin-sandbox-password")
    assert ok.status_code == 200
    body = ok.json()
    assert set(body) == {"token", "expiresAt", "user"} and body["token"].count(".") == 2
    assert (
        RFC3339.match(body["expiresAt"]) and body["user"]["id"] == "admin" and body["user"]["role"] == "admin"
    )
    for user, password in (("admin", "wrong"), ("nobody", "x")):
        bad = cp.login(user, password)
        assert bad.status_code == 401 and bad.json() == {"error": "Invalid credentials"}


def test_auth_required_and_admin_role(cp, user1_headers):
    assert cp.http.get("/api/v1/admin/agents").status_code == 401
    assert cp.http.get("/api/v1/sessions").status_code == 401
    bad = cp.http.get("/api/v1/admin/agents", headers={"Authorization": "Bearer a.b.c"})
    assert bad.status_code == 401 and bad.json()["error"] == "Invalid token"
    forbidden = cp.http.get("/api/v1/admin/agents", headers=user1_headers)
    assert forbidden.status_code == 403 and "error" in forbidden.json()
    assert cp.http.get("/api/v1/sessions", headers=user1_headers).status_code == 200


def test_register_auth_and_validation(cp):
    missing = cp.http.post("/api/v1/agents/register", json={"agentId": "abc", "platform": "kubernetes"})
    assert missing.status_code == 401
    assert cp.register("abc", key="not-hex").status_code == 401
    assert cp.register("abc", key=secrets.token_hex(32)).status_code == 404  # unknown agent, not bootstrap
    bad = cp.register("x", platform="mainframe")
    assert bad.status_code == 400 and set(bad.json()["fields"]) == {"agentId", "platform"}


def test_register_auto_approved_then_reregister_sets_online(cp):
    first = cp.register("k8s-one", capacity={"maxSessions": 5}, metadata={"namespace": "streamspace"})
    assert first.status_code == 200
    body = first.json()
    assert body["approvalStatus"] == "approved" and body["agent"]["agentId"] == "k8s-one"
    row = cp.sql.one("SELECT status, approval_status, org_id FROM agents WHERE agent_id = 'k8s-one'")
    assert row == {"status": "offline", "approval_status": "approved", "org_id": "default-org"}
    again = cp.register("k8s-one")
    assert again.status_code == 200 and again.json()["agent"]["status"] == "online"


@pytest.mark.controlplane(faults=["agent-id-per-pod"])
def test_agent_id_per_pod_pending_approve_reject(cp):
    pending = cp.register("k8s-prod-cluster-pod-a")
    assert pending.status_code == 202
    assert pending.json()["approvalStatus"] == "pending"
    assert cp.agent_status("k8s-prod-cluster-pod-a") == "offline"
    # re-registration marks a pending agent online (real code), but the baseline selector skips it
    assert cp.register("k8s-prod-cluster-pod-a").status_code == 202
    assert cp.agent_status("k8s-prod-cluster-pod-a") == "online"
    assert cp.create_session().status_code == 503
    approved = cp.http.post("/api/v1/admin/agents/k8s-prod-cluster-pod-a/approve", headers=cp.admin)
    assert approved.status_code == 200
    api_key = approved.json()["apiKey"]
    assert set(approved.json()) == {"message", "agentId", "apiKey", "warning"} and len(api_key) == 64
    assert (
        cp.http.post("/api/v1/admin/agents/k8s-prod-cluster-pod-a/approve", headers=cp.admin).status_code
        == 404
    )
    # its own key works, a wrong key for a known agent is 403
    assert cp.register("k8s-prod-cluster-pod-a", key=api_key).status_code == 200
    assert cp.register("k8s-prod-cluster-pod-a", key=secrets.token_hex(32)).status_code == 403

    assert cp.register("k8s-prod-cluster-pod-b").status_code == 202
    rejected = cp.http.post("/api/v1/admin/agents/k8s-prod-cluster-pod-b/reject", headers=cp.admin)
    assert rejected.status_code == 200 and rejected.json()["agentId"] == "k8s-prod-cluster-pod-b"
    assert cp.register("k8s-prod-cluster-pod-b").status_code == 403


@pytest.mark.controlplane(preapproved_agents=["fixed-id"], auto_approve=False)
def test_preapproved_list(cp):
    assert cp.register("fixed-id").status_code == 200
    assert cp.register("other-id").status_code == 202


def test_http_heartbeat(cp):
    cp.register("k8s-hb")
    key = {"X-Agent-API-Key": cp.config.bootstrap_key}
    ok = cp.http.post(
        "/api/v1/agents/k8s-hb/heartbeat", json={"status": "draining", "activeSessions": 0}, headers=key
    )
    assert ok.status_code == 200
    assert (
        set(ok.json()) == {"message", "agentId", "status", "lastHeartbeat"}
        and ok.json()["status"] == "draining"
    )
    assert cp.agent_status("k8s-hb") == "draining"
    assert (
        cp.http.post("/api/v1/agents/nope/heartbeat", json={"status": "online"}, headers=key).status_code
        == 404
    )
    assert (
        cp.http.post("/api/v1/agents/k8s-hb/heartbeat", json={"status": "x"}, headers=key).status_code == 400
    )


def test_admin_agents_list_get_delete(cp):
    cp.register("agent-old", region="eu")
    cp.register("agent-new", platform="docker", region="us")
    listed = cp.http.get("/api/v1/admin/agents", headers=cp.admin).json()
    assert listed["total"] == 2 and [a["agentId"] for a in listed["agents"]] == ["agent-new", "agent-old"]
    by_platform = cp.http.get("/api/v1/admin/agents?platform=docker", headers=cp.admin).json()
    assert [a["agentId"] for a in by_platform["agents"]] == ["agent-new"]
    assert cp.http.get("/api/v1/admin/agents?region=eu&status=offline", headers=cp.admin).json()["total"] == 1
    cp.register(
        "agent-old", capacity={"maxSessions": 3}, metadata={"kubernetes": True}
    )  # → online + heartbeat
    one = cp.http.get("/api/v1/admin/agents/agent-old", headers=cp.admin).json()
    assert set(one) == AGENT_FIELDS | {"approvedAt", "approvedBy"}
    assert one["status"] == "online" and one["capacity"] == {"maxSessions": 3}
    assert all(RFC3339.match(one[k]) for k in ("lastHeartbeat", "createdAt", "updatedAt"))
    missing = cp.http.get("/api/v1/admin/agents/ghost", headers=cp.admin)
    assert missing.status_code == 404 and missing.json() == {"error": "Agent not found", "agentId": "ghost"}
    deleted = cp.http.delete("/api/v1/admin/agents/agent-new", headers=cp.admin)
    assert deleted.status_code == 200 and deleted.json()["agentId"] == "agent-new"
    assert cp.http.delete("/api/v1/admin/agents/agent-new", headers=cp.admin).status_code == 404


def test_admin_command_not_connected_and_unknown(cp):
    cp.register("k8s-cmd")
    body = {"action": "stop_session", "sessionId": "s1"}
    down = cp.http.post("/api/v1/admin/agents/k8s-cmd/command", json=body, headers=cp.admin)
    assert down.status_code == 503
    assert down.json()["error"] == "Agent not connected" and down.json()["status"] == "offline"
    assert cp.http.post("/api/v1/admin/agents/ghost/command", json=body, headers=cp.admin).status_code == 404
    bad = cp.http.post("/api/v1/admin/agents/k8s-cmd/command", json={"action": "reboot"}, headers=cp.admin)
    assert bad.status_code == 400


def test_session_create_errors(cp):
    assert cp.create_session().status_code == 503
    assert cp.create_session().json() == {
        "error": "No agents available",
        "message": "No online agents are available to run the session",
    }
    assert cp.create_session(template="no-such-template").status_code == 404
    unknown_user = cp.create_session(user="loadtest1")
    assert unknown_user.status_code == 404 and unknown_user.json()["error"] == "User not found"
    no_user = cp.http.post("/api/v1/sessions", json={"template": "firefox-browser"}, headers=cp.admin)
    assert no_user.status_code == 400
    assert cp.http.get("/api/v1/sessions/nope", headers=cp.admin).status_code == 404
    for method, path in (("DELETE", ""), ("PUT", "/hibernate"), ("PUT", "/wake")):
        assert cp.http.request(method, f"/api/v1/sessions/nope{path}", headers=cp.admin).status_code == 404


@pytest.mark.controlplane(faults=["no-replay-on-reconnect", "batched-frames"])
def test_sandbox_endpoints(cp):
    faults = cp.http.get("/sandbox/v1/faults").json()
    assert (
        faults["faults"] == ["batched-frames", "no-replay-on-reconnect"] and len(faults["descriptions"]) == 2
    )
    assert cp.http.get("/sandbox/v1/events").json() == {"events": [], "total": 0}
