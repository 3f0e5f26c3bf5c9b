"""Probes on a busy install: other tenants' sessions and never-pruned commands must neither fail nor pass
a hypothesis; the default scope is the run (chaosstream.selection). Real control plane and PostgreSQL."""

import datetime as dt

import pytest
from chaoslib.exceptions import ActivityFailed
from conftest import ADMIN_PASSWORD

from chaosstream import probes, selection
from chaosstream.clients import database


@pytest.fixture(autouse=True)
def new_run():
    selection.start_run()
    yield
    selection.start_run()


def _cfg(cp):
    return {"streamspace_api_url": cp.url, "streamspace_poll_interval": 0.05}


def _sec(cp):
    return {"username": "admin", "password": ADMIN_PASSWORD, "db_dsn": cp.config.dsn}


def _tenant_rows(cp, n_sessions=30):
    """Another tenant: user1's sessions on a neighbour agent, and commands stuck sent/ack/failed from
    before the run (a real install never prunes them)."""
    cp.sql.run(
        "INSERT INTO agents (agent_id, platform, status, approval_status, last_heartbeat, created_at, updated_at)"
        " VALUES ('k8s-neighbour', 'kubernetes', 'online', 'approved', now(), now(), now())"
    )
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=2)
    for i in range(n_sessions):
        sid = f"user1-firefox-browser-t{i:04d}"
        cp.sql.run(
            "INSERT INTO sessions (id, user_id, template_name, state, agent_id, namespace, platform, created_at,"
            " updated_at) VALUES (%s, 'user1', 'firefox-browser', 'running', 'k8s-neighbour', 'streamspace',"
            " 'kubernetes', %s, %s)",
            (sid, old, old),
        )
        status = ("sent", "ack", "failed")[i % 3]
        cp.sql.run(
            "INSERT INTO agent_commands (command_id, agent_id, session_id, action, status, error_message,"
            " created_at) VALUES (%s, 'k8s-neighbour', %s, 'stop_session', %s, %s, %s)",
            (f"cmd-t{i:06d}", sid, status, "agent is not connected" if status == "failed" else None, old),
        )


def test_tenants_never_fail_the_commands_hypothesis(cp):
    _tenant_rows(cp)
    cfg, sec = _cfg(cp), _sec(cp)
    # cluster-wide they are lost and open for good ...
    assert (
        probes.lost_commands(scope="all", since="2000-01-01T00:00:00Z", configuration=cfg, secrets=sec)[
            "count"
        ]
        == 30
    )
    with pytest.raises(ActivityFailed, match="still open"):
        probes.wait_for_commands_drained(scope="all", timeout=0.3, configuration=cfg, secrets=sec)
    # ... but this run has nothing lost and nothing open
    assert probes.lost_commands(stuck_after=0, configuration=cfg, secrets=sec)["count"] == 0
    assert probes.wait_for_commands_drained(timeout=0.3, configuration=cfg, secrets=sec)["drained"] == 0
    assert probes.lost_commands(agent_id="k8s-neighbour", configuration=cfg, secrets=sec)["count"] == 0
    assert probes.queued_commands(status="sent", configuration=cfg, secrets=sec)["count"] == 0


def test_the_runs_own_lost_command_is_found_among_tenants(cp):
    _tenant_rows(cp)
    cfg, sec = _cfg(cp), _sec(cp)
    agent = cp.agent("k8s-mine")
    created = cp.create_session(persistentHome=False)
    sid = created.json()["name"]
    selection.remember_sessions("default", [sid])
    agent.next_command()  # delivered, never acknowledged: stuck in `sent`
    lost = probes.lost_commands(stuck_after=0, configuration=cfg, secrets=sec)
    assert lost["count"] == 1 and lost["stuck"][0]["status"] == "sent"
    with pytest.raises(ActivityFailed, match=cp.command_id_of(created)):
        probes.wait_for_commands_drained(timeout=0.3, configuration=cfg, secrets=sec)
    assert probes.queued_commands(status="sent", configuration=cfg, secrets=sec)["count"] == 1


def test_distribution_counts_only_the_run(cp):
    _tenant_rows(cp)
    cfg, sec = _cfg(cp), _sec(cp)
    assert probes.session_distribution(scope="all", configuration=cfg, secrets=sec)["sessions"] == 30
    before = probes.session_distribution(configuration=cfg, secrets=sec)
    assert before["spread"] == 0 and before["sessions"] == 0
    agents = [cp.agent("k8s-a"), cp.agent("k8s-b")]
    names = []
    for _ in range(4):
        created = cp.create_session(persistentHome=False)
        names.append(created.json()["name"])
    for agent in agents:
        agent.next_command()
        agent.next_command()
    selection.remember_sessions("default", names)
    got = probes.session_distribution(configuration=cfg, secrets=sec)
    assert got["per_agent"] == {"k8s-a": 2, "k8s-b": 2} and got["spread"] == 0 and got["sessions"] == 4
    everything = probes.session_distribution(scope="all", configuration=cfg, secrets=sec)
    assert everything["sessions"] == 34  # the tenant's 30 are there, and left out of the run's spread


def test_wait_for_terminated_needs_the_row_gone_and_polls_with_one_query(cp):
    _tenant_rows(cp, n_sessions=100)
    cfg, sec = _cfg(cp), _sec(cp)
    # a session the API would 404 (state `deleted`) vs one whose row still says running
    cp.sql.run("UPDATE sessions SET state = 'deleted' WHERE id = 'user1-firefox-browser-t0000'")
    done = probes.wait_for_sessions_state(
        "terminated", session_ids=["user1-firefox-browser-t0000", "gone-for-good"], timeout=2,
        configuration=cfg, secrets=sec,
    )  # fmt: skip
    assert done["source"] == "db" and done["polls"] == 1
    with pytest.raises(ActivityFailed, match="t0001"):
        probes.wait_for_sessions_state(
            "terminated",
            session_ids=["user1-firefox-browser-t0001"],
            timeout=0.3,
            configuration=cfg,
            secrets=sec,
        )
    # per poll: one statement for any number of sessions
    calls = []
    real = database.query

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    ids = [f"user1-firefox-browser-t{i:04d}" for i in range(1, 100)]
    try:
        database.query = counting
        probes.sessions.query = counting
        got = probes.wait_for_sessions_state(
            "running", session_ids=ids, timeout=2, configuration=cfg, secrets=sec
        )
    finally:
        database.query = real
        probes.sessions.query = real
    assert got["polls"] == 1 and len(calls) == 1
