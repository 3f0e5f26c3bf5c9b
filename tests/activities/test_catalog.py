"""Every probe and action of the catalog against one sandbox (real HTTP, PostgreSQL, kubernetes client).

The tests change the system with the actions (or through the API) and check that the probes follow:
no probe may return a constant. Each test leaves the sandbox as it found it (agents online, one replica,
the sessions it created terminated).
"""

import socket
import time

import pytest
from chaoslib.exceptions import ActivityFailed
from helpers.waits import wait_for

from chaosstream import actions, probes
from chaosstream.faults.records import PREVIOUS_REPLICAS_ANNOTATION
from chaosstream.timeutil import iso, utcnow

AGENT_SELECTOR = "app.kubernetes.io/component=k8s-agent"


def _restore_agents(h) -> None:
    h.call(actions.scale_agents, -1)
    h.call(probes.wait_for_agent_status, "online", agent_id=h.agent_id, timeout=30)


def test_scale_to_zero_moves_heartbeat_queue_and_lost_commands_then_restore(harness):
    h = harness
    started = iso(utcnow())
    heartbeat = float(h.env["STREAMSPACE_HEARTBEAT_INTERVAL"])

    # Steady state, as the probes see it.
    assert h.call(probes.agent_status, agent_id=h.agent_id)["status"] == "online"
    assert h.call(probes.agents_online, min_count=1, max_heartbeat_age=3 * heartbeat) is True
    assert h.call(probes.agents_online, min_count=2) is False
    assert h.call(probes.agent_pods_ready, min_ready=1) is True
    assert h.call(probes.agent_rollout_complete) is True
    for source in ("api", "db"):
        assert 0 <= h.call(probes.agent_heartbeat_age, agent_id=h.agent_id, source=source) < 3 * heartbeat
    assert h.call(probes.queued_commands, agent_id=h.agent_id)["count"] == 0

    created = h.call(actions.create_sessions, count=1, tags=["catalog-scale"])
    (sid,) = created["sessions"]
    assert created["agents"] == {sid: h.agent_id}
    h.call(probes.wait_for_sessions_state, "running", session_ids=[sid], timeout=30)
    assert h.call(probes.session_pods_running, session_ids=[sid])["ok"] is True

    try:
        scaled = h.call(actions.scale_agents, 0, duration=120)
        assert {k: scaled[k] for k in ("namespace", "deployment", "previous_replicas", "replicas")} == {
            "namespace": "streamspace",
            "deployment": "streamspace-k8s-agent",
            "previous_replicas": 1,
            "replicas": 0,
        }
        dep = h.deployment()
        assert dep.spec.replicas == 0
        assert dep.metadata.annotations[PREVIOUS_REPLICAS_ANNOTATION] == "1"
        # Scaling twice keeps the original count for the restore.
        assert h.call(actions.scale_agents, 0, duration=120)["previous_replicas"] == 0
        assert h.deployment().metadata.annotations[PREVIOUS_REPLICAS_ANNOTATION] == "1"

        gone = h.call(probes.wait_for_agent_status, "offline", agent_id=h.agent_id, timeout=20)
        assert gone["status"] == "offline" and gone["agentId"] == h.agent_id
        wait_for(lambda: not h.agent_pods(), timeout=20, what="agent pods gone")
        assert h.call(probes.agent_pods_ready, min_ready=1) is False
        assert h.call(probes.agents_online, min_count=1) is False
        assert h.call(probes.agent_status, agent_id=h.agent_id)["status"] == "offline"

        # The heartbeat age grows while the agent is away (API and DB agree).
        first = {s: h.call(probes.agent_heartbeat_age, agent_id=h.agent_id, source=s) for s in ("api", "db")}
        time.sleep(1.2)
        later = {s: h.call(probes.agent_heartbeat_age, agent_id=h.agent_id, source=s) for s in ("api", "db")}
        for source in ("api", "db"):
            assert later[source] >= first[source] + 1.0, (source, first, later)

        # The session is no longer served by an online agent.
        assert h.call(probes.sessions_assigned, session_ids=[sid]) == {
            "ok": False,
            "checked": 1,
            "orphans": {sid: h.agent_id},
        }
        with pytest.raises(ActivityFailed, match=sid):
            h.call(probes.sessions_assigned, session_ids=[sid], raise_on_failure=True)

        # A stop_session issued during the outage is queued, not lost.
        terminated = h.call(actions.terminate_session, sid)
        command = terminated["commandId"]
        assert terminated["status_code"] == 202 and command
        queued = h.call(probes.queued_commands, agent_id=h.agent_id, action="stop_session")
        assert queued["count"] == 1 and queued["ids"] == [command]
        assert queued["oldest_age_s"] is not None and queued["oldest_age_s"] >= 0
        assert h.call(probes.queued_commands, status="pending")["count"] == 1
        assert h.call(probes.queued_commands, action="stop_session", min_count=1)["count"] == 1
        with pytest.raises(ActivityFailed, match="at least 2"):
            h.call(probes.queued_commands, action="stop_session", min_count=2)
        assert h.call(probes.queued_commands, agent_id=h.agent_id, action="start_session")["count"] == 0
        status = h.call(probes.command_status, command)
        assert (status["status"], status["action"], status["sessionId"], status["agentId"]) == (
            "pending",
            "stop_session",
            sid,
            h.agent_id,
        )
        time.sleep(0.6)
        lost = h.call(probes.lost_commands, since=started, stuck_after=0.5)
        assert lost["count"] == 1 and [c["commandId"] for c in lost["stuck"]] == [command]
        assert lost["stuck"][0]["status"] == "pending" and lost["stuck"][0]["age_s"] > 0.5
        assert h.call(probes.lost_commands, since=started, stuck_after=600)["count"] == 0

        # A drain wait on the agent's queue times out, naming the open command.
        t0 = time.monotonic()
        with pytest.raises(ActivityFailed) as info:
            h.call(probes.wait_for_commands_drained, agent_id=h.agent_id, timeout=1.0, poll_interval=0.2)
        assert time.monotonic() - t0 < 1.0 + 0.2 + 0.5
        assert command in str(info.value) and "stop_session" in str(info.value)

        # No session can be placed on the offline agent.
        placed_since = iso(utcnow())
        refused = h.call(actions.create_sessions, count=1, allow_unavailable=True)
        assert refused["unavailable"] == 1 and refused["sessions"] == []
        check = h.call(probes.no_sessions_placed_on, agent_status="offline", since=placed_since)
        assert check["ok"] is True and h.agent_id in check["agents"]
    finally:
        restored = h.call(actions.scale_agents, -1)
    assert restored["replicas"] == 1 and restored["previous_replicas"] == 0
    dep = h.deployment()
    assert dep.spec.replicas == 1
    assert PREVIOUS_REPLICAS_ANNOTATION not in (dep.metadata.annotations or {})
    # A second restore is a no-op.
    assert h.call(actions.scale_agents, -1)["replicas"] == 1

    back = h.call(probes.wait_for_agent_status, "online", agent_id=h.agent_id, timeout=30)
    assert back["status"] == "online" and back["elapsed_s"] > 0
    drained = h.call(probes.wait_for_commands_drained, agent_id=h.agent_id, timeout=30)
    assert drained["elapsed_s"] >= 0
    assert h.call(probes.command_status, command)["status"] == "completed"
    history = h.call(probes.commands_for_session, sid)
    assert [(c["action"], c["status"]) for c in history] == [
        ("start_session", "completed"),
        ("stop_session", "completed"),
    ]
    assert history[-1]["commandId"] == command and history[-1]["completedAt"]
    assert h.call(probes.queued_commands, agent_id=h.agent_id)["count"] == 0
    assert h.call(probes.lost_commands, since=started, stuck_after=0.5)["count"] == 0
    assert h.call(probes.agent_heartbeat_age, agent_id=h.agent_id, source="db") < 3 * heartbeat
    h.call(probes.wait_for_sessions_state, "terminated", session_ids=[sid], timeout=20)
    assert h.call(probes.session_pods_running, session_ids=[sid])["ok"] is False
    assert h.call(probes.agent_pods_ready, min_ready=1) is True


def test_session_lifecycle_create_hibernate_wake_kill_pod_terminate(harness):
    h = harness
    before_running = h.call(probes.sessions_in_state, "running")
    created = h.call(actions.create_sessions, count=2, tags=["catalog-life"], persistent_home=True)
    s1, s2 = created["sessions"]
    assert set(created["agents"].values()) == {h.agent_id}
    assert set(created["commands"]) == {s1, s2}
    assert created["unavailable"] == 0
    pending = h.call(probes.sessions_in_state, "pending")["names"]
    running = h.call(probes.sessions_in_state, "running")["names"]
    assert {s1, s2} <= set(pending) | set(running)
    try:
        waited = h.call(probes.wait_for_sessions_state, "running", tag="catalog-life", timeout=30)
        assert waited["count"] == 2 and waited["state"] == "running"
        now_running = h.call(probes.sessions_in_state, "running")
        assert now_running["count"] == before_running["count"] + 2
        assert {s1, s2} <= set(now_running["names"])
        assert h.call(probes.sessions_in_state, "running", user="user1")["count"] == 0
        assert h.call(probes.session_state, s1) == "running"
        assert h.call(probes.sessions_survived, tag="catalog-life") == {
            "ok": True,
            "checked": 2,
            "missing": [],
            "not_running": {},
        }
        assert h.call(probes.all_sessions_running, session_ids=[s1, s2]) is True
        pods = h.call(probes.session_pods_running, tag="catalog-life")
        assert pods["ok"] is True and set(pods["pods"]) == {s1, s2}
        placement = h.call(probes.agent_for_session, s1)
        assert placement == {
            "session": s1,
            "agentId": h.agent_id,
            "agentStatus": "online",
            "state": "running",
        }
        spread = h.call(probes.session_distribution)
        assert spread["per_agent"][h.agent_id] >= 2 and spread["agents"] == 1
        start = h.call(probes.command_status, created["commands"][s1])
        assert (start["action"], start["status"]) == ("start_session", "completed")

        # Hibernate: 202 for a running session, then 409 (no longer running); wake 409 unless hibernated.
        hib = h.call(actions.hibernate_session, s1)
        assert hib["status_code"] == 202 and hib["commandId"]
        with pytest.raises(ActivityFailed, match="409"):
            h.call(actions.hibernate_session, s1)
        with pytest.raises(ActivityFailed, match="409"):
            h.call(actions.wake_session, s2)
        h.call(probes.wait_for_sessions_state, "hibernated", session_ids=[s1], timeout=20)
        assert h.call(probes.session_state, s1) == "hibernated"
        wait_for(lambda: not h.pods(f"session={s1}"), timeout=20, what="hibernated pod gone")
        assert h.call(probes.session_pods_running, session_ids=[s1])["missing"] == [s1]
        survived = h.call(probes.sessions_survived, tag="catalog-life")
        assert survived["ok"] is False and survived["not_running"] == {s1: "hibernated"}
        assert h.call(probes.all_sessions_running, tag="catalog-life") is False

        woke = h.call(actions.wake_session, s1)
        assert woke["status_code"] == 202 and woke["commandId"] != hib["commandId"]
        h.call(probes.wait_for_sessions_state, "running", session_ids=[s1], timeout=30)
        assert h.call(probes.session_pods_running, session_ids=[s1])["ok"] is True

        # Killing a session pod: the session's Deployment makes a new pod for the same session.
        old_pod = h.call(probes.session_pods_running, session_ids=[s2])["pods"][s2]
        killed = h.call(actions.kill_session_pod, session_id=s2)
        assert killed == {"namespace": "streamspace", "killed": {s2: old_pod}}
        recovered = h.call(probes.wait_for_session_pods, session_ids=[s2], timeout=30)
        new_pod = recovered["pods"][s2]
        assert new_pod != old_pod and new_pod in h.pods(f"session={s2}")
        assert old_pod not in h.pods(f"session={s2}")
        # The home volume survived: the new pod mounts the same PVC (same uid) as the killed one.
        assert list(recovered["claims"][s2]) == [f"{s2}-home"] and recovered["same_volume"] is True
        assert (
            recovered["claims"][s2][f"{s2}-home"]
            == h.core.read_namespaced_persistent_volume_claim(f"{s2}-home", "streamspace").metadata.uid
        )
        assert h.call(probes.session_pods_running, session_ids=[s2])["pods"][s2] == new_pod
        assert h.call(probes.session_state, s2) == "running"
        assert h.call(probes.sessions_assigned, tag="catalog-life") == {
            "ok": True,
            "checked": 2,
            "orphans": {},
        }
    finally:
        done = h.call(actions.terminate_sessions, tag="catalog-life")
    assert set(done["terminated"]) == {s1, s2} and done["skipped"] == {}
    h.call(probes.wait_for_commands_drained, tag="catalog-life", timeout=30)
    for sid, command in done["terminated"].items():
        assert h.call(probes.command_status, command)["status"] == "completed"
        assert h.call(probes.commands_for_session, sid)[-1]["commandId"] == command
    assert [c["action"] for c in h.call(probes.commands_for_session, s1)] == [
        "start_session",
        "hibernate_session",
        "wake_session",
        "stop_session",
    ]
    h.call(probes.wait_for_sessions_state, "terminated", tag="catalog-life", timeout=20)
    with pytest.raises(ActivityFailed, match="409"):
        h.call(actions.terminate_session, s1)
    # Idempotent as a rollback: nothing left to terminate.
    again = h.call(actions.terminate_sessions, tag="catalog-life")
    assert again["terminated"] == {} and set(again["skipped"]) == {s1, s2}
    assert h.call(probes.sessions_in_state, "running")["count"] == before_running["count"]


def test_kill_agent_pod_and_restart_agent_replace_the_agent_process(harness):
    h = harness
    (old,) = h.agent_pods()
    killed = h.call(actions.kill_agent_pod)
    assert killed == {
        "namespace": "streamspace",
        "killed": [old],
        "agent_ids": [h.agent_id],
        "grace_period": 0,
        "mode": "delete",
        "details": [],
    }
    (new,) = wait_for(
        lambda: [n for n in h.agent_pods() if n != old], timeout=20, what="replacement agent pod"
    )
    assert old not in h.agent_pods()
    h.call(probes.wait_for_agent_status, "online", agent_id=h.agent_id, timeout=30)

    before = iso(utcnow())
    restarted = h.call(actions.restart_agent, wait=True, timeout=60)
    assert restarted["previous_pods"] == [new]
    assert restarted["rollout"]["replicas"] == 1 and restarted["rollout"]["terminating"] == []
    annotations = h.deployment().spec.template.metadata.annotations
    assert annotations["kubectl.kubernetes.io/restartedAt"] == restarted["restartedAt"] >= before
    assert new not in h.agent_pods() and len(h.agent_pods()) == 1
    assert h.call(probes.agent_rollout_complete) is True
    assert restarted["agent_ids"] == [h.agent_id] and restarted["ids"] == "fixed"
    # Reconnection by identity: the same fixed id, heard from after its replacement pod was created.
    # The rollout finished before this wait: the connect-time heartbeat still counts (no runner clock).
    back = h.call(probes.wait_for_agent_status, "online", after_rollout=True, timeout=30)
    assert back["status"] == "online" and back["agentId"] == h.agent_id
    assert back["action_at"] <= back["reconnected_at"] and "control-plane" in back["clock"]
    assert 0 < back["elapsed_s"] < 30 and back["waited_s"] < 5


def test_api_health_measures_latency(harness):
    h = harness
    health = h.call(probes.api_health)
    assert health["healthy"] is True and health["status_code"] == 200 and health["latency_ms"] > 0
    # The latency objective is applied: nothing answers within a microsecond.
    assert h.call(probes.api_health, max_latency_ms=0.001)["healthy"] is False


@pytest.mark.parametrize(
    "probe, kwargs, needle",
    [
        (probes.wait_for_agent_status, {"status": "offline", "agent_id": "k8s-sandbox-1"}, "offline"),
        (probes.wait_for_agent_status, {"status": "draining"}, "draining"),
        (
            probes.wait_for_sessions_state,
            {"state": "running", "session_ids": ["admin-x-00000000"]},
            "running",
        ),
        (probes.wait_for_session_pods, {"session_ids": ["admin-x-00000000"]}, "admin-x-00000000"),
        (probes.wait_for_agents_online, {"min_count": 2}, "2"),
    ],
    ids=["agent-offline", "any-agent-draining", "session-running", "session-pods", "two-agents-online"],
)
def test_wait_probes_honour_their_timeout(harness, probe, kwargs, needle):
    h = harness
    timeout, interval = 1.0, 0.3
    started = time.monotonic()
    with pytest.raises(ActivityFailed) as info:
        h.call(probe, timeout=timeout, poll_interval=interval, **kwargs)
    elapsed = time.monotonic() - started
    assert timeout <= elapsed <= timeout + interval + 0.3, elapsed
    message = str(info.value)
    assert needle in message and f"{timeout:g}s" in message and "\n" not in message


def test_lost_commands_reports_a_failed_command(harness):
    """A command the agent fails (hibernating a session whose Deployment does not exist) is 'lost'."""
    h = harness
    since = iso(utcnow())
    assert h.call(probes.lost_commands, since=since)["count"] == 0
    response = h.http(
        "POST",
        f"/api/v1/admin/agents/{h.agent_id}/command",
        json={"action": "hibernate_session", "sessionId": "admin-ghost-0badf00d"},
    )
    assert response.status_code == 201, response.text
    command = response.json()["commandId"]
    h.call(probes.wait_for_commands_drained, agent_id=h.agent_id, timeout=20)
    status = h.call(probes.command_status, command)
    assert status["status"] == "failed" and status["errorMessage"]
    lost = h.call(probes.lost_commands, since=since)
    assert lost["count"] == 1 and lost["stuck"] == []
    assert lost["failed"] == [
        {"commandId": command, "action": "hibernate_session", "errorMessage": status["errorMessage"]}
    ]
    assert h.call(probes.lost_commands, since=since, agent_id=h.agent_id)["count"] == 1
    assert h.call(probes.commands_for_session, "admin-ghost-0badf00d")[0]["status"] == "failed"
    # `since` after the failure: nothing lost in that window.
    assert h.call(probes.lost_commands, since=iso(utcnow()))["count"] == 0
    assert h.call(probes.queued_commands, status="failed", agent_id=h.agent_id)["ids"][-1] == command


@pytest.mark.parametrize(
    "probe, kwargs",
    [
        (probes.wait_for_agent_status, {}),
        (probes.wait_for_agents_online, {}),
        (probes.wait_for_sessions_state, {"session_ids": ["admin-x-00000000"]}),
    ],
    ids=["agent-status", "agents-online", "sessions-state"],
)
def test_wait_probes_bound_a_hanging_api_by_their_timeout(harness, probe, kwargs):
    """An API that accepts connections but never answers must not hold a wait past its timeout."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        cfg = harness.configuration(streamspace_api_url=f"http://127.0.0.1:{hole.getsockname()[1]}")
        # with a DSN the session wait reads the database, not the API: take the API path here
        sec = harness.secrets(db_dsn="") if probe is probes.wait_for_sessions_state else None
        started = time.monotonic()
        with pytest.raises(ActivityFailed, match="did not answer"):
            harness.call(probe, timeout=1.0, poll_interval=0.2, cfg=cfg, sec=sec, **kwargs)
    assert time.monotonic() - started < 1.0 + 0.2 + 0.5


def test_vnc_probes_monitor_and_api_pod_restart(harness):
    """The VNC activities through the API: a handshake measures, the monitor holds the stream through an API pod
    restart (restart_api_pod waits for the replacement and records the fault's end), and stops."""
    h = harness
    created = h.call(actions.create_sessions, count=1, user="admin", tags=["catalog-vnc"])["sessions"]
    try:
        h.call(probes.wait_for_sessions_state, "running", session_ids=created, timeout=30)
        waited = h.call(probes.wait_for_vnc, session_ids=created, timeout=10)
        assert waited["elapsed_s"] >= 0 and waited["sessions"][created[0]]["banner_ms"] > 0
        shake = h.call(probes.vnc_handshake, session_id=created[0])
        assert (
            shake["ok"] and shake["checked"] == 1 and shake["first_update_ms_max"] >= shake["banner_ms_max"]
        )
        started = h.call(actions.monitor_streams, session_ids=created)
        assert started["streams"] == 1
        restarted = h.call(actions.restart_api_pod, grace_period=0, timeout=30)
        assert len(restarted["killed"]) == 1 and restarted["ready_again_s"] > 0
        report = h.call(probes.stream_continuity, max_reconnect_s=5)
        assert report["all_up"] and report["fault_end"] == "API pod replaced"
        final = h.call(actions.stop_stream_monitor)
        assert final["running"] is False and final["streams"] == 1
        assert h.call(actions.stop_stream_monitor)["running"] is False  # twice is fine
    finally:
        h.call(actions.stop_stream_monitor)
        h.call(actions.terminate_sessions, session_ids=created)
