"""Partitions hit exactly what they claim, on a sandbox shaped like a real cluster: the SRE reaches the API
on a front port, the agents dial the in-cluster Service (ClusterIP DNATed on the node, or rewritten at
connect() by a socket-LB dataplane). Each test fails if the product regresses to cutting the SRE's port,
one form of the route only, every agent replica, or a CNI's silence."""

import hashlib
import os
import shutil
import subprocess
import time
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from chaoslib.exceptions import ActivityFailed
from helpers.harness import Harness
from helpers.sentences import assert_one_sentence
from helpers.waits import wait_for

from chaosstream import actions

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("iptables") or not shutil.which("ip"),
    reason="real partitions need root, ip and iptables",
)


def _status(h: Harness, agent_id: str = None) -> dict:
    """Agents of the running pods (a real install also keeps offline rows of past pods: left out here)."""
    with psycopg.connect(h.env["STREAMSPACE_DB_DSN"], autocommit=True) as conn:
        rows = dict(conn.execute("SELECT agent_id, status FROM agents").fetchall())
    pods = h.agent_pods()
    live = {a: s for a, s in rows.items() if a == h.agent_id or any(a.endswith("-" + p) for p in pods)}
    return live


def _netns_of(pod) -> str:
    digest = hashlib.sha1(pod.metadata.uid.encode()).hexdigest()[:8]
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    return next(n for n in names if n.endswith("-" + digest))


def _our_rules(pod) -> str:
    out = ""
    for tool in ("iptables", "ip6tables"):
        out += subprocess.run(
            ["ip", "netns", "exec", _netns_of(pod), tool, "-S"], capture_output=True, text=True
        ).stdout
    return "\n".join(line for line in out.splitlines() if "chaosstream-" in line)


def _connects(pod, dest) -> bool:
    code = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 2).close()"
    return (
        subprocess.run(
            ["ip", "netns", "exec", _netns_of(pod), "python3", "-c", code, dest[0], str(dest[1])],
            capture_output=True,
            timeout=10,
        ).returncode
        == 0
    )


def _nothing_left(h: Harness) -> None:
    for pod in h.agent_pods().values():
        assert not [k for k in (pod.metadata.annotations or {}) if k.startswith("chaosstream.io/")], (
            pod.metadata.name
        )
        assert "chaosstream.io/partition-target" not in (pod.metadata.labels or {})
        assert _our_rules(pod) == ""
    assert not h.net.list_namespaced_network_policy("streamspace").items


@pytest.mark.parametrize("service_route", ["kube-proxy", "socket-lb"])
def test_exec_partition_cuts_the_agents_service_route_not_the_sres_port(sandbox_factory, service_route):
    sandbox = sandbox_factory(service_route=service_route)
    h = Harness(sandbox)
    sre_port = urlsplit(sandbox.env["STREAMSPACE_API_URL"]).port
    svc = h.core.read_namespaced_service("streamspace-api", "streamspace")
    endpoint = h.core.read_namespaced_endpoints("streamspace-api", "streamspace").subsets[0]
    cluster_form = [svc.spec.cluster_ip, 8000]
    endpoint_form = [endpoint.addresses[0].ip, endpoint.ports[0].port]
    assert sre_port not in (8000, endpoint_form[1])

    # The form the pod does not see is not enough: verification catches it and undoes it.
    unseen = endpoint_form if service_route == "kube-proxy" else cluster_form
    wrong = "{}:{}".format(*unseen)
    with pytest.raises(ActivityFailed) as info:
        h.call(actions.partition_agent, method="exec", duration=30, destinations=[wrong])
    assert_one_sentence(str(info.value), "stayed reachable")
    _nothing_left(h)
    assert _status(h)[h.agent_id] == "online"

    v6 = [[ip, 8000] for ip in svc.spec.cluster_ips if ":" in ip]
    (pod,) = h.agent_pods().values()
    if sandbox.env.get("STREAMSPACE_SANDBOX_IPV6") == "on":
        assert v6, "a dual-stack sandbox gives the Service an IPv6 ClusterIP"
        if service_route == "kube-proxy":
            assert _connects(pod, v6[0]), "the IPv6 ClusterIP must answer before the partition"

    out = h.call(actions.partition_agent, method="exec", duration=30)
    injected = time.monotonic()
    assert out["verified"] is True, out
    assert cluster_form in out["destinations"] and endpoint_form in out["destinations"]
    for dest in v6:  # both families are cut, with ip6tables for IPv6
        assert dest in out["destinations"] and dest in out["verification"][0]["cut"]
        assert not _connects(pod, dest)
    assert all(port != sre_port for _, port in out["destinations"])
    check = out["verification"][0]
    assert check["still_reachable"], "the kube-apiserver reachability was not checked"
    wait_for(lambda: _status(h)[h.agent_id] == "offline", 15, "the agent marked offline")
    offline_after = time.monotonic() - injected
    # The SRE's route stays open: the API answers on its front port.
    assert httpx.get(sandbox.env["STREAMSPACE_API_URL"] + "/health", timeout=5).status_code < 500
    healed = h.call(actions.heal_agent_partition)
    assert healed["healed"], healed
    wait_for(lambda: _status(h)[h.agent_id] == "online", 15, "the agent back online")
    _nothing_left(h)
    print(f"exec/{service_route}: injection->offline {offline_after:.2f}s after the action returned")


@pytest.mark.parametrize("cni", ["enforcing", "new-connections-only", "none"])
def test_network_policy_hits_one_replica_and_is_verified(sandbox_factory, cni):
    # the chart's shape: replicas with per-pod agent ids, three agents
    sandbox = sandbox_factory(agent_replicas=3, faults=("agent-id-per-pod",), cni=cni)
    h = Harness(sandbox)
    agents = _status(h)
    assert len(agents) == 3 and set(agents.values()) == {"online"}, agents
    if cni != "enforcing":
        with pytest.raises(ActivityFailed) as info:
            h.call(actions.partition_agent, method="network-policy", duration=30)
        assert_one_sentence(str(info.value), "heartbeats still reach the API")
        assert "new connections" in str(info.value)
        _nothing_left(h)
        assert set(_status(h).values()) == {"online"}
        return
    out = h.call(actions.partition_agent, method="network-policy", duration=30)
    assert out["verified"] is True, out
    (target,) = out["pods"]
    labelled = [
        n for n, p in h.agent_pods().items() if "chaosstream.io/partition-target" in (p.metadata.labels or {})
    ]
    assert labelled == [target]
    (policy,) = h.net.list_namespaced_network_policy("streamspace").items
    assert list(policy.spec.pod_selector.match_labels) == ["chaosstream.io/partition-target"]
    assert "end_port" not in str([r.to_dict() for r in policy.spec.egress]).replace("'end_port': None", "")
    target_agent = next(a for a in _status(h) if a.endswith(target))
    wait_for(lambda: _status(h)[target_agent] == "offline", 15, "the target marked offline")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # the other replicas stay online throughout
        others = {a: s for a, s in _status(h).items() if a != target_agent}
        assert set(others.values()) == {"online"}, others
        time.sleep(0.3)
    h.call(actions.heal_agent_partition)
    wait_for(lambda: set(_status(h).values()) == {"online"}, 15, "every agent online")
    _nothing_left(h)


def test_a_late_image_pull_partitions_nothing(sandbox_factory):
    """The image arrives after the run gave up and after the partition's deadline: nothing is cut, and
    until then the record stays (heal cannot drop what may still start)."""
    sandbox = sandbox_factory(image_pull="backoff:6")
    h = Harness(sandbox)
    with pytest.raises(ActivityFailed) as info:
        h.call(actions.partition_agent, method="ephemeral", duration=2, start_timeout=1)
    assert_one_sentence(str(info.value), "not running after 1s")
    assert "ImagePullBackOff" in str(info.value) or "ErrImagePull" in str(info.value)
    (pod,) = h.agent_pods().values()
    assert [k for k in pod.metadata.annotations if k.startswith("chaosstream.io/partition-")]
    healed = h.call(actions.heal_agent_partition)["healed"]
    assert healed and "has not started" in healed[0], healed
    pod = h.core.read_namespaced_pod(pod.metadata.name, "streamspace")
    assert [k for k in pod.metadata.annotations if k.startswith("chaosstream.io/partition-")], (
        "record dropped"
    )

    def started():
        p = h.core.read_namespaced_pod(pod.metadata.name, "streamspace")
        return [
            s for s in p.status.ephemeral_container_statuses or [] if s.state.running or s.state.terminated
        ]

    deadline = time.monotonic() + 12
    while not started():  # the pull completes after the deadline; the agent stays online meanwhile
        assert time.monotonic() < deadline, "the late pull never completed"
        assert _status(h)[h.agent_id] == "online"
        time.sleep(0.2)
    for _ in range(10):
        assert _our_rules(pod) == ""
        assert _status(h)[h.agent_id] == "online"
        time.sleep(0.3)
    assert h.call(actions.heal_all)["healed"] == []
    _nothing_left(h)


def test_pod_security_baseline_refusal_reaches_the_user_and_leaves_nothing(sandbox_factory):
    sandbox = sandbox_factory(pod_security="baseline")
    h = Harness(sandbox)
    (pod,) = h.agent_pods().values()
    with pytest.raises(ActivityFailed) as info:
        h.call(actions.partition_agent, method="ephemeral", duration=30)
    message = str(info.value)
    assert_one_sentence(message, "admission refused")
    assert (
        f'pods "{pod.metadata.name}" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities '
        '(container "chaosstream-partition-' in message
    )
    assert 'must not include "NET_ADMIN" in securityContext.capabilities.add)' in message
    from chaosstream.journal.verdict import is_config_error

    assert not is_config_error(message), "an admission refusal is 'fault not injected', not a config error"
    assert not h.core.read_namespaced_pod(pod.metadata.name, "streamspace").spec.ephemeral_containers
    _nothing_left(h)
