"""Agent identity, approval and the run's memory of what it hit (issue 14): waits follow the agents a
fault targeted, reconnection is recognised by identity, a pending agent is a finding."""

import pytest
from chaoslib.exceptions import ActivityFailed
from helpers.harness import Harness
from helpers.sentences import assert_one_sentence
from helpers.waits import wait_for

from chaosstream import actions, probes
from chaosstream.sandbox.timers import FAST


def test_offline_wait_with_no_identity_and_nothing_targeted_is_refused(harness):
    with pytest.raises(ActivityFailed) as info:
        harness.call(probes.wait_for_agent_status, "offline", agent_id_prefix="k8s-sandbox", timeout=1)
    assert_one_sentence(str(info.value), "kill_agent_pod")


def test_intended_install_has_fixed_ids_and_stale_rows_of_past_pods(harness):
    h = harness
    assert h.env["STREAMSPACE_SANDBOX_PROFILE"] == "intended" and h.env["STREAMSPACE_AGENT_IDS"] == "fixed"
    assert h.agent_id == "k8s-sandbox-1"
    stale = h.sql("SELECT agent_id FROM agents WHERE status = 'offline' AND agent_id LIKE 'k8s-sandbox-%%'")
    assert len(stale) >= 2 and all(r[0].startswith("k8s-sandbox-streamspace-k8s-agent-") for r in stale)
    # The stale rows never read as "the agent": the newest with the prefix is the live one.
    assert h.call(probes.agent_status, agent_id_prefix="k8s-sandbox")["agentId"] == h.agent_id
    # Before any fault an offline wait by id times out on the live agent: the stale rows do not count.
    with pytest.raises(ActivityFailed, match="did not reach status 'offline'"):
        h.call(probes.wait_for_agent_status, "offline", agent_id=h.agent_id, timeout=0.5)


def test_as_built_new_pod_awaits_approval_is_placed_on_and_approve_agents_lets_it_connect(sandbox_factory):
    sb = sandbox_factory(profile="as-built", tenants=False)  # exact agent sets: no neighbour agents
    h = Harness(sb)
    assert (
        sb.env["STREAMSPACE_SANDBOX_PROFILE"] == "as-built" and sb.env["STREAMSPACE_AGENT_IDS"] == "per-pod"
    )
    (pod,) = h.agent_pods()
    assert h.agent_id == f"k8s-sandbox-{pod}"  # $(AGENT_ID_PREFIX)-$(POD_NAME), expanded by the kubelet

    killed = h.call(actions.kill_agent_pod)
    assert killed["agent_ids"] == [h.agent_id]
    # The replacement registers as a new agent: 202 pending, row offline, no WebSocket.
    (new,) = wait_for(
        lambda: [r[0] for r in h.sql("SELECT agent_id FROM agents WHERE approval_status = 'pending'")],
        timeout=20,
        what="a pending agent",
    )
    assert new.startswith("k8s-sandbox-streamspace-k8s-agent-") and new != h.agent_id
    # The wait does not pass and does not time out silently: it names the finding.
    with pytest.raises(ActivityFailed) as info:
        h.call(probes.wait_for_agent_status, "online", timeout=FAST.approval_retry + 1.5)
    assert_one_sentence(str(info.value), f"new agent {new} awaits approval since")
    # Re-registration (every approval_retry) set it online although pending (agents.go:186-193) ...
    assert h.sql("SELECT status, approval_status FROM agents WHERE agent_id = %s", (new,)) == [
        ("online", "pending")
    ]
    # ... and the selector ignores approval (agent_selector.go:163-173): a new session goes to it.
    placed = h.call(actions.create_sessions, count=1, tags=["as-built-pending"])
    assert list(placed["agents"].values()) == [new]

    approved = h.call(actions.approve_agents, agent_id_prefix="k8s-sandbox", timeout=20)
    assert approved["approved"] == [new]
    assert 0 <= approved["latency_s"][new] <= FAST.approval_retry + 1.0
    back = h.call(probes.wait_for_agent_status, "online", timeout=10)
    assert back["agentId"] == new and back["agents"] == [new]
    # Nothing pending any more: approving again is a no-op.
    assert h.call(actions.approve_agents, agent_id_prefix="k8s-sandbox")["approved"] == []
    h.call(actions.terminate_sessions, tag="as-built-pending")


def test_intended_agent_replicas_run_ha_and_the_lease_holder_is_the_one_hit(sandbox_factory):
    sb = sandbox_factory(agent_replicas=3, tenants=False)
    h = Harness(sb)
    assert h.deployment().spec.replicas == 3 and len(h.agent_pods()) == 3
    # One fixed id, one leader (the Lease holder) connected, two standbys.
    assert h.sql("SELECT agent_id FROM agents WHERE status = 'online'") == [(h.agent_id,)]
    lease = h.coordination().read_namespaced_lease(f"streamspace-agent-{h.agent_id}", "streamspace")
    leader = lease.spec.holder_identity
    assert leader in h.agent_pods()

    killed = h.call(actions.kill_agent_pod)
    assert killed["killed"] == [leader] and killed["agent_ids"] == [h.agent_id]
    # A deletion is SIGTERM first (kubelet): the leader releases the Lease and closes its socket, and a
    # standby takes over at once — the fixed id comes back online without waiting for the lease to expire.
    back = h.call(probes.wait_for_agent_status, "online", timeout=15)
    assert back["agentId"] == h.agent_id
    lease = h.coordination().read_namespaced_lease(f"streamspace-agent-{h.agent_id}", "streamspace")
    assert lease.spec.holder_identity not in ("", leader)
    assert back["elapsed_s"] <= float(sb.env["STREAMSPACE_RECONNECT_OBJECTIVE"])


def test_as_built_agent_replicas_have_one_id_per_pod_and_a_replacement_is_a_new_agent(sandbox_factory):
    sb = sandbox_factory(agent_replicas=3, profile="as-built", tenants=False)
    h = Harness(sb)
    online = {r[0] for r in h.sql("SELECT agent_id FROM agents WHERE status = 'online'")}
    assert online == {f"k8s-sandbox-{p}" for p in h.agent_pods()} and len(online) == 3
    killed = h.call(actions.kill_agent_pod)
    (victim,) = killed["killed"]
    assert killed["agent_ids"] == [f"k8s-sandbox-{victim}"]
    offline = h.call(probes.wait_for_agent_status, "offline", timeout=10)
    assert offline["agentId"] == f"k8s-sandbox-{victim}"
    with pytest.raises(ActivityFailed, match="awaits approval since"):
        h.call(probes.wait_for_agent_status, "online", timeout=3)
    approved = h.call(actions.approve_agents, timeout=20)
    (new,) = approved["approved"]
    assert new not in online and new[len("k8s-sandbox-") :] in h.agent_pods()
    back = h.call(probes.wait_for_agent_status, "online", timeout=10)
    assert back["agentId"] == new


def test_agent_counts_can_be_scoped_to_one_cluster_by_region(harness):
    h = harness
    assert h.call(probes.agents_online, min_count=1, agent_id_prefix="k8s-sandbox", region="sandbox") is True
    assert h.call(probes.agents_online, min_count=1, region="eu-west-neighbour") is False
    got = h.call(probes.wait_for_agents_online, min_count=1, region="sandbox", timeout=5)
    assert got["agents"] == [h.agent_id]
