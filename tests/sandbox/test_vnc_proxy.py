"""The VNC proxy `GET /api/v1/vnc/:sessionId` (api/internal/handlers/vnc_proxy.go) against a fake agent
speaking the real protocol: status codes before the upgrade, the relay both ways (base64 TEXT frames),
one connection per session, what closes a stream, the ground truth of /sandbox/v1/streams — and, in the
as-built profile, the real relay's defects (each test cites the Go code)."""

import base64
import json
import time

import pytest
import websocket
from helpers.vnc import connect_status
from helpers.waits import wait_for

from chaosstream.sandbox.profile import AS_BUILT

as_built = pytest.mark.controlplane(profile=AS_BUILT, preapproved_agents=frozenset({"k8s-vnc"}))
BANNER = base64.b64encode(b"RFB 003.008\n").decode()


def _running(cp, agent, user="admin"):
    created = cp.create_session(user=user)
    assert created.status_code == 202, created.text
    session_id = created.json()["name"]
    command = agent.next_command()
    agent.send("ack", {"commandId": command["commandId"]})
    agent.send("status", {"sessionId": session_id, "state": "running", "vncReady": True, "vncPort": 3000,
                          "platformMetadata": {"podName": f"{session_id}-pod", "podIP": "10.0.0.5"}})  # fmt: skip
    agent.send("complete", {"commandId": command["commandId"], "result": {"state": "running"}})
    wait_for(lambda: cp.session(session_id)["state"] == "running")
    return session_id


def _vnc(agent, kind=None, timeout=5.0):
    """The next vnc_* message the agent got (commands and others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(agent.next_frame(max(0.05, deadline - time.monotonic())))
        if message["type"].startswith("vnc_") and (kind is None or message["type"] == kind):
            return message["payload"]


def _ui(cp, session_id, token=None):
    url = f"{cp.ws_url}/api/v1/vnc/{session_id}?token={token or cp.admin_token}"
    return websocket.create_connection(url, timeout=5)


def _recv(ws, within):
    """The next data frame's text within `within` seconds (the server's pings, which websocket-client
    would answer while extending its own timeout, are skipped here); None on timeout."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        ws.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            opcode, data = ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise websocket.WebSocketConnectionClosedException("close frame")
        if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            return data.decode()
    return None


def _closed(ws, within):
    """The server dropped the socket within `within` seconds (frames meanwhile are drained)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if _recv(ws, deadline - time.monotonic()) is None:
                return False
        except (websocket.WebSocketConnectionClosedException, OSError):
            return True
    return False


def _streams(cp, session_id):
    body = cp.http.get("/sandbox/v1/streams", params={"session_id": session_id}).json()
    assert body["total"] == len(body["streams"])
    return body["streams"]


def test_status_codes_before_the_upgrade(cp, user1_headers):
    """vnc_proxy.go:136-185 and auth/middleware.go:155-200 (a WebSocket upgrade without a token: bare 401)."""
    agent = cp.agent("k8s-vnc")
    session_id = _running(cp, agent)
    assert connect_status(cp.url, session_id, None) == (401, b"")
    assert connect_status(cp.url, session_id, "not-a-jwt") == (401, b"")
    status, body = connect_status(cp.url, "admin-nothing-12345678", cp.admin_token)
    assert (status, json.loads(body)) == (404, {"error": "Session not found"})
    user1 = user1_headers["Authorization"].split(" ", 1)[1]
    status, body = connect_status(cp.url, session_id, user1)  # no admin bypass either way
    assert (status, json.loads(body)) == (403, {"error": "Access denied"})
    pending = cp.create_session().json()["name"]
    agent.next_command()
    status, body = connect_status(cp.url, pending, cp.admin_token)
    assert (status, json.loads(body)) == (409, {"error": "Session is not running (state: pending)"})
    cp.sql.run("UPDATE sessions SET agent_id = NULL WHERE id = %s", (session_id,))
    status, body = connect_status(cp.url, session_id, cp.admin_token)
    assert (status, json.loads(body)) == (503, {"error": "Session has no agent assigned"})
    cp.sql.run("UPDATE sessions SET agent_id = 'k8s-vnc' WHERE id = %s", (session_id,))
    agent.drop()
    wait_for(lambda: cp.agent_status("k8s-vnc") == "offline")
    status, body = connect_status(cp.url, session_id, cp.admin_token)
    assert (status, json.loads(body)) == (503, {"error": "Agent k8s-vnc is not connected"})
    # a browser's query token also authenticates later requests through the proxy cookie
    plain = cp.http.get(f"/api/v1/vnc/{session_id}", params={"token": cp.admin_token})
    assert plain.cookies.get("streamspace_proxy_token") == cp.admin_token


def test_relay_both_ways_and_the_ground_truth(cp):
    """Intended: the UI's connection asks for a fresh tunnel (empty vnc_data); bytes of an older tunnel
    (before vnc_ready) never reach it; TEXT frames carry the agent's base64 unchanged both ways
    (vnc_proxy.go:442,463-473); leaving sends vnc_close (vnc_proxy.go:304)."""
    agent = cp.agent("k8s-vnc")
    session_id = _running(cp, agent)
    ui = _ui(cp, session_id)
    assert _vnc(agent) == {"sessionId": session_id, "data": ""}
    agent.send("vnc_data", {"sessionId": session_id, "data": base64.b64encode(b"stale").decode()})
    agent.send("vnc_ready", {"sessionId": session_id, "vncPort": 3000, "podName": "pod"})
    agent.send("vnc_data", {"sessionId": session_id, "data": BANNER})
    agent.send("vnc_data", {"sessionId": "someone-else", "data": BANNER})
    assert _recv(ui, 5) == BANNER
    seen_at = time.time()
    ui.send(base64.b64encode(b"RFB 003.008\n").decode())
    assert _vnc(agent, "vnc_data") == {"sessionId": session_id, "data": BANNER}
    (live,) = _streams(cp, session_id)
    assert live["closedAt"] is None and live["bytesToClient"] == 12 and live["framesToClient"] == 1
    assert live["bytesFromClient"] == 12 and live["agentId"] == "k8s-vnc" and live["userId"] == "admin"
    first = live["firstBytesAt"]
    assert abs(_epoch(first) - seen_at) < 2.0
    ui.close()
    assert _vnc(agent, "vnc_close") == {"sessionId": session_id, "reason": "client_disconnect"}
    (done,) = wait_for(lambda: [s for s in _streams(cp, session_id) if s["closedAt"]])
    assert done["closeReason"] == "client disconnected" and done["firstBytesAt"] == first
    assert (
        _epoch(done["openedAt"]) <= _epoch(first) <= _epoch(done["lastBytesAt"]) <= _epoch(done["closedAt"])
    )
    assert cp.session(session_id)["active_connections"] == 0


def _epoch(text):
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_one_connection_per_session_and_what_ends_a_stream(cp):
    """vnc_proxy.go:232-244 (a new connection closes the old one, without a close frame), 447-455
    (vnc_error closes the UI); intended: the agent's socket dying closes the UI, so the client reconnects."""
    agent = cp.agent("k8s-vnc")
    session_id = _running(cp, agent)
    old = _ui(cp, session_id)
    assert _vnc(agent)["data"] == ""
    new = _ui(cp, session_id)
    assert _closed(old, 5), "the older connection survived a newer one"
    # the old stream's tunnel is closed before the new one is asked for, so the new tunnel survives
    assert _vnc(agent) == {"sessionId": session_id, "reason": "client_disconnect"}
    assert _vnc(agent) == {"sessionId": session_id, "data": ""}
    # the agent answers each request in order: the old stream's tunnel (ready, bytes), then the new one's
    agent.send("vnc_ready", {"sessionId": session_id, "vncPort": 3000})
    agent.send("vnc_data", {"sessionId": session_id, "data": base64.b64encode(b"old tunnel").decode()})
    agent.send("vnc_ready", {"sessionId": session_id, "vncPort": 3000})
    agent.send("vnc_data", {"sessionId": session_id, "data": BANNER})
    assert _recv(new, 5) == BANNER
    agent.send("vnc_error", {"sessionId": session_id, "error": "pod not running (phase: Pending)"})
    assert _closed(new, 5)
    third = _ui(cp, session_id)
    assert _vnc(agent, "vnc_data")["data"] == ""
    agent.drop()
    assert _closed(third, 5), "the UI socket outlived its agent's socket"
    reasons = [s["closeReason"] for s in wait_for(lambda: [s for s in _streams(cp, session_id) if s["closedAt"]][2:] and _streams(cp, session_id))]  # fmt: skip
    assert reasons == [
        "replaced by a newer connection",
        "vnc_error: pod not running (phase: Pending)",
        "agent k8s-vnc disconnected",
    ]


@pytest.mark.parametrize("profile", ["intended", pytest.param("as-built", marks=as_built)])
def test_concurrent_streams_of_one_agent(cp, profile):
    """As built every relay of an agent reads the agent's single Receive channel and drops what is not its
    own (vnc_proxy.go:415-446 reads `agentConn.Receive`, agent_websocket.go:288-295 fills it): with two
    streams on one agent, the other relay steals about half of a session's frames. Intended: none lost."""
    agent = cp.agent("k8s-vnc")
    one, two = _running(cp, agent), _running(cp, agent)
    ui_one, ui_two = _ui(cp, one), _ui(cp, two)
    if profile == "intended":
        for sid in (one, two):
            agent.send("vnc_ready", {"sessionId": sid, "vncPort": 3000})
    else:
        assert agent.no_frame(0.3), "as built the proxy asks the agent for nothing on connect"
    time.sleep(0.3)  # both relays are waiting for the agent's messages
    sent = 40
    for n in range(sent):
        agent.send("vnc_data", {"sessionId": one, "data": base64.b64encode(b"%03d" % n).decode()})
    got = []
    while len(got) < sent:
        data = _recv(ui_one, 1.0)
        if data is None:
            break
        got.append(base64.b64decode(data))
    assert _recv(ui_two, 0.3) is None  # never another session's bytes
    if profile == "intended":
        assert got == [b"%03d" % n for n in range(sent)]
    else:
        assert 0 < len(got) < sent, f"{len(got)} of {sent} frames arrived: no stealing?"
        assert got == sorted(got)


@as_built
def test_as_built_agent_loss_leaves_the_ui_open_and_silent(cp):
    """agent_hub.go:298-316 closes the agent's Send channel, never Receive: the relay keeps waiting on it
    (vnc_proxy.go:415-419), so the UI socket stays open after its agent's socket died, until the UI sends
    and sendVNCDataToAgent finds no agent (vnc_proxy.go:491-495). A NULL agent_id fails Go's Scan: 404."""
    agent = cp.agent("k8s-vnc")
    session_id = _running(cp, agent)
    ui = _ui(cp, session_id)
    ui.send(BANNER)
    assert _vnc(agent, "vnc_data")["data"] == BANNER  # the relay runs
    agent.drop()
    wait_for(lambda: cp.agent_status("k8s-vnc") == "offline")
    assert not _closed(ui, 1.0), "as built the UI socket stays open"
    ui.send(base64.b64encode(b"\x03\x01").decode())
    assert _closed(ui, 5)
    (record,) = wait_for(lambda: [s for s in _streams(cp, session_id) if s["closedAt"]])
    assert record["closeReason"] == "agent k8s-vnc not connected" and record["firstBytesAt"] is None
    cp.sql.run("UPDATE sessions SET agent_id = NULL WHERE id = %s", (session_id,))
    status, body = connect_status(cp.url, session_id, cp.admin_token)
    assert (status, json.loads(body)) == (404, {"error": "Session not found"})
