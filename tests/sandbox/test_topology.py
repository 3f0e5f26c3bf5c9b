"""The chart's control plane in the emulated cluster: API Deployment `streamspace-api` (2 replicas behind the
Service) and PostgreSQL StatefulSet `streamspace-postgres` (chart/templates/api-deployment.yaml,
postgresql.yaml). Deleting an API pod restarts that replica (its agents reconnect through the Service);
deleting the PostgreSQL pod restarts the database. One sandbox for the module: the tests run in order."""

import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from helpers.waits import wait_for
from kubernetes import client, config

NS = "streamspace"
API = "app.kubernetes.io/name=streamspace,app.kubernetes.io/instance=streamspace,app.kubernetes.io/component=api"


@pytest.fixture(scope="module")
def sandbox():
    from chaosstream.sandbox.daemon.client import start_daemon, stop_daemon

    state = Path(tempfile.mkdtemp(prefix="css-test-"))
    env = start_daemon(state, parent_pid=os.getpid(), tenants=False)
    try:
        yield env
    finally:
        stop_daemon(state)
        shutil.rmtree(state, ignore_errors=True)


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
        answers.append(_login(sandbox))
    assert set(answers) == {200}, answers  # the other replica answered all along
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
