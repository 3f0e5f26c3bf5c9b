"""Placement probes with three agents: distribution, placement on an offline agent, multi-pod kills."""

import time

from helpers.harness import Harness
from helpers.waits import wait_for

from chaosstream import actions, probes
from chaosstream.timeutil import iso, utcnow

AGENTS = ["k8s-sandbox-1", "k8s-sandbox-2", "k8s-sandbox-3"]


def test_distribution_placement_and_multi_pod_kill_with_three_agents(sandbox_factory):
    """Every online agent counts here (`scope: all`, no tenants); the run scope is tested in
    tests/sandbox/test_probes_busy_install.py."""
    h = Harness(sandbox_factory(agents=3, tenants=False))
    dist = h.call(probes.session_distribution, scope="all")
    assert dist == {
        "per_agent": dict.fromkeys(AGENTS, 0),
        "spread": 0,
        "agents": 3,
        "sessions": 0,
        "unassigned": 0,
    }
    assert h.call(probes.agents_online, min_count=3) is True

    # StreamSpace places each new session on the agent with the fewest: 5 sessions -> 2/2/1.
    created = h.call(actions.create_sessions, count=5, tags=["spread"])
    assert set(created["agents"].values()) == set(AGENTS)
    h.call(probes.wait_for_sessions_state, "running", tag="spread", timeout=30)
    dist = h.call(probes.session_distribution, scope="all")
    assert sorted(dist["per_agent"].values()) == [1, 2, 2] and dist["spread"] == 1 and dist["sessions"] == 5
    assert dist["per_agent"] == {a: list(created["agents"].values()).count(a) for a in AGENTS}
    assert h.call(probes.session_distribution, states=["hibernated"], scope="all")["sessions"] == 0
    assert h.call(probes.session_distribution, agent_id_prefix="k8s-sandbox-3", scope="all")["agents"] == 1
    assigned = h.call(probes.sessions_assigned, tag="spread")
    assert assigned == {"ok": True, "checked": 5, "orphans": {}}
    for sid, agent in created["agents"].items():
        assert h.call(probes.agent_for_session, sid)["agentId"] == agent

    # Take agent 2 away: it drops out of the distribution, its sessions are orphans, and new sessions
    # go to the others only.
    since = iso(utcnow())
    victim_sessions = [s for s, a in created["agents"].items() if a == "k8s-sandbox-2"]
    h.call(actions.scale_agents, 0, deployment="streamspace-k8s-agent-2", duration=120)
    try:
        h.call(probes.wait_for_agent_status, "offline", agent_id="k8s-sandbox-2", timeout=20)
        dist = h.call(probes.session_distribution, scope="all")
        assert set(dist["per_agent"]) == {"k8s-sandbox-1", "k8s-sandbox-3"} and dist["agents"] == 2
        orphans = h.call(probes.sessions_assigned, tag="spread")
        assert orphans["ok"] is False
        assert orphans["orphans"] == dict.fromkeys(victim_sessions, "k8s-sandbox-2")
        more = h.call(actions.create_sessions, count=3, tags=["spread-late"])
        assert "k8s-sandbox-2" not in more["agents"].values()
        offline = h.call(probes.no_sessions_placed_on, agent_status="offline", since=since)
        assert offline["ok"] is True and "k8s-sandbox-2" in offline["agents"]
        # The window defaults to when the agent left 'online'.
        assert h.call(probes.no_sessions_placed_on, agent_id="k8s-sandbox-2")["ok"] is True
        # The same question about an agent that did take the new sessions answers "placed".
        busy = next(iter(more["agents"].values()))
        placed = h.call(probes.no_sessions_placed_on, agent_id=busy, since=since)
        assert placed["ok"] is False
        assert set(placed["placed"]) == {s for s, a in more["agents"].items() if a == busy}
    finally:
        h.call(actions.scale_agents, -1, deployment="streamspace-k8s-agent-2")
    back = h.call(probes.wait_for_agents_online, min_count=3, timeout=30)
    assert back["online"] == 3 and sorted(back["agents"]) == AGENTS
    assert h.call(probes.session_distribution, scope="all")["agents"] == 3

    # kill_agent_pod honours max_pods: 2 of the 3 agent pods, the third untouched.
    pods = h.agent_pods()
    assert len(pods) == 3
    killed = h.call(actions.kill_agent_pod, max_pods=2)
    assert len(killed["killed"]) == 2 and set(killed["killed"]) < set(pods)
    time.sleep(0.2)
    now = h.agent_pods()
    (spared,) = set(pods) - set(killed["killed"])
    assert spared in now and not set(killed["killed"]) & set(now)
    wait_for(lambda: len(h.agent_pods()) == 3, timeout=20, what="three agent pods again")
    for agent in AGENTS:
        h.call(probes.wait_for_agent_status, "online", agent_id=agent, timeout=30)
    wait_for(lambda: h.call(probes.agent_pods_ready, min_ready=3), timeout=20, what="three ready agent pods")
    assert h.call(probes.agent_pods_ready, min_ready=4) is False
