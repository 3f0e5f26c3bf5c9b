"""The chart's control plane in the emulated cluster: API Deployment `streamspace-api` (2 replicas behind the
Service) and PostgreSQL StatefulSet `streamspace-postgres` (chart/templates/api-deployment.yaml,
postgresql.yaml). Deleting an API pod restarts that replica (its agents reconnect through the Service);
deleting the PostgreSQL pod restarts the database. One sandbox for the module: the tests run in order."""

import datetime as dt
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import pytest
import websocket
from helpers.waits import wait_for
from kubernetes import client, config

NS = "streamspace"
SESSIONS = "streamspace-sessions"  # the chart's k8sAgent.config.sessionNamespace
API = "app.kubernetes.io/name=streamspace,app.kubernetes.io/instance=streamspace,app.kubernetes.io/component=api"


def _started(**options):
    """A sandbox of its own (no tenants) for the module, stopped and removed afterwards."""
    from chaosstream.sandbox.daemon.client import start_daemon, stop_daemon

    state = Path(tempfile.mkdtemp(prefix="css-test-"))
    env = start_daemon(state, parent_pid=os.getpid(), tenants=False, **options)
    try:
        yield env
    finally:
        stop_daemon(state)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def sandbox():
    yield from _started(extra={"session_namespace": SESSIONS})


@pytest.fixture(scope="module")
def as_built():
    """`--profile as-built`: the chart's two API replicas without Redis (AGENTHUB_REDIS_ENABLED=false)."""
    # an EKS-like cluster: StorageClass gp2, no `standard`
    yield from _started(profile="as-built", extra={"storage_classes": "gp2", "api_replicas": 2})


@pytest.fixture(scope="module")
def core(sandbox):
    return client.CoreV1Api(config.new_client_from_config(config_file=sandbox["KUBECONFIG"]))


@pytest.fixture(scope="module")
def apps(sandbox):
    return client.AppsV1Api(config.new_client_from_config(config_file=sandbox["KUBECONFIG"]))


def _ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _api_pods(core):
    return [
        p for p in core.list_namespaced_pod(NS, label_selector=API).items if not p.metadata.deletion_timestamp
    ]


def _events(env, agent):
    got = httpx.get(f"{env['STREAMSPACE_API_URL']}/sandbox/v1/events", params={"agent_id": agent}, timeout=10)
    return got.json()["events"]


def _login(env) -> int:
    # a new connection each time: the Service balances connections, not requests
    with httpx.Client(base_url=env["STREAMSPACE_API_URL"], timeout=10) as http:
        body = {"username": env["STREAMSPACE_USERNAME"], "password": env["STREAMSPACE_PASSWORD"]}
        return http.post("/api/v1/auth/login", json=body).status_code


def test_the_chart_shape(core, apps):
    """api-deployment.yaml: 2 replicas, component=api, container `api` port `http` 8000; postgresql.yaml:
    StatefulSet, PVC and Service `streamspace-postgres`, component=database, port 5432."""
    deploy = apps.read_namespaced_deployment("streamspace-api", NS)
    assert deploy.spec.replicas == 2
    assert deploy.spec.template.spec.containers[0].name == "api"
    assert deploy.spec.template.spec.containers[0].ports[0].container_port == 8000
    wait_for(lambda: len([p for p in _api_pods(core) if _ready(p)]) == 2, timeout=20)
    sts = apps.read_namespaced_stateful_set("streamspace-postgres", NS)
    assert (
        sts.spec.replicas == 1 and sts.spec.selector.match_labels["app.kubernetes.io/component"] == "database"
    )
    pod = core.read_namespaced_pod("streamspace-postgres-0", NS)
    assert pod.status.phase == "Running"
    assert core.read_namespaced_service("streamspace-postgres", NS).spec.ports[0].port == 5432
    assert core.read_namespaced_persistent_volume_claim("streamspace-postgres", NS)


def _token(env) -> str:
    with httpx.Client(base_url=env["STREAMSPACE_API_URL"], timeout=10) as http:
        body = {"username": env["STREAMSPACE_USERNAME"], "password": env["STREAMSPACE_PASSWORD"]}
        return http.post("/api/v1/auth/login", json=body).json()["token"]


def _create_sessions(env, count: int):
    """`count` sessions, each created over a new connection (so the Service sends them to the replicas in
    turn); returns their start_session command rows once each left `pending`."""
    token, ids = _token(env), []
    for n in range(count):
        with httpx.Client(base_url=env["STREAMSPACE_API_URL"], timeout=10) as http:
            body = {"user": ("admin", "user1")[n % 2], "template": "firefox-browser"}
            created = http.post("/api/v1/sessions", json=body, headers={"Authorization": f"Bearer {token}"})
            assert created.status_code == 202, created.text
            ids.append(created.json()["name"])

    def settled():
        with psycopg.connect(env["STREAMSPACE_DB_DSN"]) as conn:
            rows = conn.execute(
                "SELECT session_id, status, error_message FROM agent_commands"
                " WHERE action = 'start_session' AND session_id = ANY(%s)",
                (ids,),
            ).fetchall()
        return rows if len(rows) == count and all(r[1] != "pending" for r in rows) else None

    return wait_for(settled, timeout=20)


def test_intended_replicas_share_agent_routing(sandbox):
    """With Redis (intended) either replica hands a command to the agent whichever holds its socket
    (api/internal/websocket/agent_hub.go:509-536)."""
    rows = _create_sessions(sandbox, 4)
    assert all(status in ("sent", "ack", "completed") for _, status, _ in rows), rows
    STARTED.extend(r[0] for r in rows)


STARTED: list = []


def test_session_probes_and_actions_look_in_the_session_namespace(sandbox, core):
    """The agent puts sessions in its NAMESPACE, the chart's sessionNamespace (k8s-agent-deployment.yaml:62-64,
    agent_handlers.go:109-137); every session probe and action follows `streamspace_session_namespace`."""
    from chaosstream.actions.sessions import kill_session_pod
    from chaosstream.probes.sessions import session_pods_running, wait_for_session_pods

    assert sandbox["STREAMSPACE_SESSION_NAMESPACE"] == SESSIONS
    ids = STARTED[:1] or [r[0] for r in _create_sessions(sandbox, 1)]
    wait_for(lambda: core.list_namespaced_pod(SESSIONS, label_selector=f"session={ids[0]}").items, timeout=20)
    assert not core.list_namespaced_pod(NS, label_selector=f"session={ids[0]}").items
    cfg = {"streamspace_api_url": sandbox["STREAMSPACE_API_URL"], "streamspace_namespace": NS}
    sec = {"username": "admin", "password": sandbox["STREAMSPACE_PASSWORD"],
           "db_dsn": sandbox["STREAMSPACE_DB_DSN"], "KUBECONFIG": sandbox["KUBECONFIG"]}  # fmt: skip
    blind = session_pods_running(session_ids=ids, configuration=cfg, secrets=sec)
    assert blind["missing"] == ids  # the agent's namespace holds none of them
    cfg["streamspace_session_namespace"] = SESSIONS
    seen = wait_for(
        lambda: session_pods_running(session_ids=ids, configuration=cfg, secrets=sec)["ok"], timeout=20
    )
    assert seen
    killed = kill_session_pod(session_id=ids[0], configuration=cfg, secrets=sec)
    assert killed["namespace"] == SESSIONS
    back = wait_for_session_pods(session_ids=ids, timeout=30, configuration=cfg, secrets=sec)
    assert back["pods"][ids[0]] != killed["killed"][ids[0]]


def test_as_built_only_the_replica_holding_the_socket_dispatches(as_built):
    """No Redis (chart default, api/cmd/main.go:170-205): the replica without the agent's socket marks the
    command failed "agent is not connected" (command_dispatcher.go:217-221, agent_hub.go:539-540); the
    Service sends every other connection there. Its admin command endpoint answers 503
    (api/internal/handlers/agents.go:581)."""
    rows = _create_sessions(as_built, 4)
    failed = [r for r in rows if r[1] == "failed"]
    assert failed and len(failed) < len(rows), rows
    assert {r[2] for r in failed} == {"agent is not connected"}
    agent, token = as_built["STREAMSPACE_AGENT_ID"], _token(as_built)
    codes = set()
    for _ in range(4):
        with httpx.Client(base_url=as_built["STREAMSPACE_API_URL"], timeout=10) as http:
            got = http.post(
                f"/api/v1/admin/agents/{agent}/command",
                json={"action": "stop_session", "sessionId": rows[0][0]},
                headers={"Authorization": f"Bearer {token}"},
            )
            codes.add(got.status_code)
    assert codes == {201, 503}


def test_deleting_the_api_pod_that_holds_the_agent_restarts_that_replica(sandbox, core):
    """The replica holding the agent's socket goes away: a replacement pod serves, the API answers through
    the other replica meanwhile, and the agent reconnects through the Service."""
    agent = sandbox["STREAMSPACE_AGENT_ID"]
    last = _events(sandbox, agent)[-1]
    assert last["status"] == "online"
    holder = last["connectionId"].split("/")[0]
    assert holder in {p.metadata.name for p in _api_pods(core)}
    started = time.monotonic()
    core.delete_namespaced_pod(holder, NS)
    answers = []
    while time.monotonic() - started < 3:
        try:
            answers.append(_login(sandbox))
        except httpx.TransportError:  # a connection racing the replica's shutdown, as with a real Service
            answers.append("cut")
    # the other replica answered all along: no error status, at most one connection cut in the race
    assert set(answers) <= {200, "cut"} and answers.count("cut") <= 1 and answers[-1] == 200, answers
    wait_for(
        lambda: len([p for p in _api_pods(core) if _ready(p) and p.metadata.name != holder]) == 2, timeout=30
    )

    def reconnected():
        events = _events(sandbox, agent)
        return events[-1]["status"] == "online" and not events[-1]["connectionId"].startswith(holder + "/")

    wait_for(reconnected, timeout=30)
    events = _events(sandbox, agent)
    assert any(e["status"] == "offline" and e["connectionId"].startswith(holder + "/") for e in events)


def test_deleting_the_postgres_pod_restarts_the_database(sandbox, core):
    """Every connection drops; the StatefulSet brings `streamspace-postgres-0` back on the same data."""
    dsn = sandbox["STREAMSPACE_DB_DSN"]
    before = core.read_namespaced_pod("streamspace-postgres-0", NS).metadata.uid
    conn = psycopg.connect(dsn, autocommit=True)
    agents = conn.execute("SELECT count(*) FROM agents").fetchone()[0]
    core.delete_namespaced_pod("streamspace-postgres-0", NS)
    with pytest.raises(psycopg.OperationalError):
        for _ in range(100):
            conn.execute("SELECT 1")
            time.sleep(0.1)
    conn.close()

    def back():
        pod = core.read_namespaced_pod("streamspace-postgres-0", NS)
        return pod.metadata.uid != before and _ready(pod)

    wait_for(back, timeout=30)
    with psycopg.connect(dsn) as again:
        assert again.execute("SELECT count(*) FROM agents").fetchone()[0] == agents  # same data (the PVC)
    wait_for(lambda: _login(sandbox) == 200, timeout=30)


def test_crds_are_served_and_prune_as_the_api_server_does(sandbox):
    """chart/crds/: `kubectl get crd` lists sessions/templates.stream.space; a Session CR loses its `status`
    on create (status subresource, sessions.yaml:111-112) and the `spec` fields the schema does not declare
    (`resources.cpu`: the schema has resources.limits/requests only, sessions.yaml:35-56); defaults apply."""
    api = config.new_client_from_config(config_file=sandbox["KUBECONFIG"])
    names = {c.metadata.name for c in client.ApiextensionsV1Api(api).list_custom_resource_definition().items}
    assert {"sessions.stream.space", "templates.stream.space"} <= names
    custom = client.CustomObjectsApi(api)
    body = {
        "apiVersion": "stream.space/v1alpha1",
        "kind": "Session",
        "metadata": {"name": "crd-check"},
        "spec": {"user": "admin", "template": "firefox-browser", "state": "running",
                 "resources": {"cpu": "1000m", "requests": {"cpu": "500m"}}, "unknown": 1},
        "status": {"phase": "Running"},
    }  # fmt: skip
    created = custom.create_namespaced_custom_object("stream.space", "v1alpha1", NS, "sessions", body)
    assert "status" not in created
    assert created["spec"] == {
        "user": "admin", "template": "firefox-browser", "state": "running",
        "resources": {"requests": {"cpu": "500m"}},
        "persistentHome": True, "idleTimeout": "30m", "maxSessionDuration": "8h",
    }  # fmt: skip
    created["status"] = {"phase": "Running", "podName": "p", "extra": "x"}
    status = custom.replace_namespaced_custom_object_status(
        "stream.space", "v1alpha1", NS, "sessions", "crd-check", created
    )
    assert status["status"] == {"phase": "Running", "podName": "p"}
    custom.delete_namespaced_custom_object("stream.space", "v1alpha1", NS, "sessions", "crd-check")


def test_check_refuses_persistent_homes_without_the_agents_storage_class(as_built, monkeypatch):
    """The agent puts homes on StorageClass `standard` (agent_k8s_operations.go:543): on a cluster without it
    (EKS-like here) `check` fails an experiment that asks persistent homes and says what to change; the
    experiment asks them only when configured (STREAMSPACE_SESSION_PERSISTENT_HOME, off in this sandbox)."""
    import json

    from helpers import EXPERIMENTS

    from chaosstream.controls.preflight import run_checks

    for key, value in as_built.items():
        monkeypatch.setenv(key, value)
    experiment = json.loads((EXPERIMENTS / "session-pod-loss.json").read_text())
    assert as_built["STREAMSPACE_SESSION_PERSISTENT_HOME"] == "false"
    assert "storage class" not in {c.name for c in run_checks(experiment, lock=False)}
    monkeypatch.setenv("STREAMSPACE_SESSION_PERSISTENT_HOME", "true")
    storage = [c for c in run_checks(experiment, lock=False) if c.name == "storage class"]
    assert [c.status for c in storage] == ["fail"]
    assert "'standard'" in storage[0].text and "gp2" in storage[0].text
    assert "STREAMSPACE_SESSION_PERSISTENT_HOME=false" in storage[0].text


def test_check_verifies_session_permissions_in_the_session_namespace(sandbox, monkeypatch, tmp_path):
    """`check` asks for the session activities' calls in the session namespace: the CronJob's Role
    (deploy/kubernetes/rbac.yaml) bound in the agents' namespace only does not cover them."""
    import json

    from helpers import EXPERIMENTS
    from helpers.rbac import service_account_kubeconfig

    from chaosstream.controls.preflight import run_checks

    sa = service_account_kubeconfig(sandbox["KUBECONFIG"], tmp_path / "sa.kubeconfig")
    for key, value in sandbox.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KUBECONFIG", str(sa))
    experiment = json.loads((EXPERIMENTS / "session-pod-loss.json").read_text())
    (permissions,) = [c for c in run_checks(experiment, lock=False) if c.name == "permissions"]
    assert permissions.status == "fail", permissions.text
    assert f"denied in {SESSIONS}: " in permissions.text and "delete pods" in permissions.text
    assert f"denied in {NS}:" not in permissions.text


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _holder(env, agent: str) -> str:
    """The API pod whose socket the agent's latest `online` event came from."""
    online = [e for e in _events(env, agent) if e["status"] == "online"]
    return online[-1]["connectionId"].split("/")[0]


def test_as_built_the_other_replicas_reconciler_force_terminates_a_connected_agents_session(as_built):
    """Each replica runs its own reconciler, which asks its own hub IsAgentConnected (no Redis,
    agent_hub.go:586-606): the replica without the agent's socket finds the agent gone and force-terminates
    a session stuck `terminating` (`agent_unavailable`, session_reconciler.go:165-185) while the agent stays
    connected to the other replica, which would have re-sent stop_session instead (:167-178)."""
    agent = as_built["STREAMSPACE_AGENT_ID"]
    holder, before = _holder(as_built, agent), len(_events(as_built, agent))
    token = _token(as_built)
    with httpx.Client(base_url=as_built["STREAMSPACE_API_URL"], timeout=10) as http:
        body = {"user": "admin", "template": "firefox-browser"}
        created = http.post("/api/v1/sessions", json=body, headers={"Authorization": f"Bearer {token}"})
    assert created.status_code == 202, created.text
    session = created.json()["name"]

    def settled():  # the agent's `status` message (start_session) must not overwrite the state set below
        with psycopg.connect(as_built["STREAMSPACE_DB_DSN"]) as conn:
            row = conn.execute(
                "SELECT agent_id, status FROM agent_commands WHERE session_id = %s AND action = 'start_session'",
                (session,),
            ).fetchone()
        return row if row and row[1] in ("completed", "failed") else None

    assert wait_for(settled, timeout=20)[0] == agent
    # its stop was lost an hour ago: `terminating` far past the 10 min (scaled) force threshold
    with psycopg.connect(as_built["STREAMSPACE_DB_DSN"]) as conn:
        conn.execute(
            "UPDATE sessions SET state = 'terminating', updated_at = updated_at - interval '1 hour' WHERE id = %s",
            (session,),
        )

    def forced():
        with psycopg.connect(as_built["STREAMSPACE_DB_DSN"]) as conn:
            return conn.execute(
                "SELECT state, termination_reason FROM sessions WHERE id = %s AND state <> 'terminating'",
                (session,),
            ).fetchone()

    # a reconciler cycle is 60 s real (6 s here): the other replica's next cycle finds the agent "gone"
    assert wait_for(forced, timeout=20) == ("terminated", "agent_unavailable")
    # ... yet the agent never left its replica
    assert _events(as_built, agent)[before:] == [] and _holder(as_built, agent) == holder
    with psycopg.connect(as_built["STREAMSPACE_DB_DSN"]) as conn:
        assert conn.execute("SELECT status FROM agents WHERE agent_id = %s", (agent,)).fetchone() == (
            "online",
        )


def _bootstrap_key(env) -> str:
    """The agents' AGENT_API_KEY, as whoever deploys an agent reads it (the agent Deployment's env)."""
    apps = client.AppsV1Api(config.new_client_from_config(config_file=env["KUBECONFIG"]))
    for deploy in apps.list_namespaced_deployment(NS).items:
        for container in deploy.spec.template.spec.containers:
            for var in container.env or []:
                if var.name == "AGENT_API_KEY" and var.value:
                    return var.value
    raise AssertionError("no agent Deployment with AGENT_API_KEY")


def test_as_built_an_old_replicas_unregister_marks_an_agent_offline_that_reconnected_elsewhere(as_built):
    """The Go agent reconnects without closing its old socket (main.go:827-835 calls Reconnect on a read
    error; connectWebSocket, main.go:662-669, replaces a.wsConn), so the old replica's socket stays open and
    silent. Its stale sweep then unregisters by agent id (agent_hub.go:384-404) and marks the agent
    `offline` (agent_hub.go:300-330) although the agent is connected to the other replica; the agent's next
    heartbeat there marks it online again (agent_websocket.go:361-380). Here a raw socket plays the
    agent: the sandbox's own agent closes its old socket first (sandbox/agent/mainloop.py:113-115)."""
    url, key, agent = as_built["STREAMSPACE_API_URL"], _bootstrap_key(as_built), "leaky-reconnect-agent"
    with httpx.Client(base_url=url, timeout=10) as http:
        body = {"agentId": agent, "platform": "kubernetes", "region": "sandbox"}
        assert (
            http.post("/api/v1/agents/register", json=body, headers={"X-Agent-API-Key": key}).status_code
            == 202
        )
        approved = http.post(
            f"/api/v1/admin/agents/{agent}/approve", headers={"Authorization": f"Bearer {_token(as_built)}"}
        )
        assert approved.status_code == 200, approved.text
    ws_url = url.replace("http://", "ws://") + f"/api/v1/agents/connect?agent_id={agent}"
    sockets: list = []
    # one kept-alive connection for the ground truth, so the sockets alone take turns at the Service
    ground = httpx.Client(base_url=url, timeout=10)

    def events() -> list:
        return ground.get("/sandbox/v1/events", params={"agent_id": agent}).json()["events"]

    def dial() -> str:
        online = len([e for e in events() if e["status"] == "online"])
        sockets.append(websocket.create_connection(ws_url, header=[f"X-Agent-API-Key: {key}"], timeout=5))
        wait_for(lambda: len([e for e in events() if e["status"] == "online"]) > online, 10)
        return [e for e in events() if e["status"] == "online"][-1]["connectionId"].split("/")[0]

    def heartbeat() -> None:
        payload = {"status": "online", "activeSessions": 0}
        sockets[-1].send(json.dumps({"type": "heartbeat", "timestamp": _now(), "payload": payload}))

    try:
        old = dial()
        for _ in range(4):  # the Service balances connections: dial until one lands on the other replica
            new = dial()
            if new != old:
                break
            old = new  # the same replica closed the earlier socket (register replaces it)
        assert new != old, "every reconnect landed on the same replica"
        reconnected = events()[-1]
        sent = 0.0

        def old_replica_unregistered():
            nonlocal sent
            if time.monotonic() - sent > 2:  # the live socket heartbeats (stale after 4.5 s here)
                heartbeat()
                sent = time.monotonic()
            with psycopg.connect(as_built["STREAMSPACE_DB_DSN"]) as conn:
                status = conn.execute("SELECT status FROM agents WHERE agent_id = %s", (agent,)).fetchone()[0]
            gone = [e for e in events() if e["status"] == "offline"]
            return (gone, status) if gone and status == "offline" else None

        gone, _ = wait_for(old_replica_unregistered, timeout=20)
        assert [e["connectionId"].split("/")[0] for e in gone] == [old], gone
        assert gone[0]["reason"] in ("stale", "read-deadline") and gone[0]["at"] >= reconnected["at"]
        # the new replica still holds the agent's socket: nothing went offline there
        assert [e for e in events() if e["connectionId"] == reconnected["connectionId"]] == [reconnected]
        assert sockets[-1].connected
        heartbeat()  # the agent is still there: its next heartbeat on the new replica says so

        def online_again():
            with psycopg.connect(as_built["STREAMSPACE_DB_DSN"]) as conn:
                return (
                    conn.execute("SELECT status FROM agents WHERE agent_id = %s", (agent,)).fetchone()[0]
                    == "online"
                )

        wait_for(online_again, timeout=10)
    finally:
        ground.close()
        for sock in sockets:
            sock.close()
