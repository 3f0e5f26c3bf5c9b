"""Background tenants: seeded history, fresh neighbours, a trickle, and the neighbours doing their work."""

from conftest import SQL, fresh_db

from chaosstream.sandbox.tenants import NEIGHBOUR_PREFIX, TENANT_USERS, Tenants


def test_seed_and_trickle(pg):
    dsn = fresh_db(pg)
    sql = SQL(dsn)
    tenants = Tenants(dsn)
    tenants.seed()
    assert {
        r["id"] for r in sql.all("SELECT id FROM users WHERE id = ANY(%s)", (list(TENANT_USERS),))
    } == set(TENANT_USERS)
    per_agent = sql.all(
        "SELECT agent_id, count(*) AS n FROM sessions WHERE state = 'running' GROUP BY agent_id"
    )
    assert {r["agent_id"]: r["n"] for r in per_agent} == {
        f"{NEIGHBOUR_PREFIX}-1": 25,
        f"{NEIGHBOUR_PREFIX}-2": 25,
    }
    stuck = sql.all("SELECT status, count(*) AS n FROM agent_commands GROUP BY status")
    assert {r["status"]: r["n"] for r in stuck} == {"sent": 20, "ack": 20, "failed": 20}

    sql.run("UPDATE agents SET last_heartbeat = now() - interval '1 hour'")
    for _ in range(20):
        tenants.tick()
    ages = sql.all("SELECT extract(epoch FROM (now() - last_heartbeat)) AS age FROM agents")
    assert all(r["age"] < 60 for r in ages)
    statuses = sql.all(
        "SELECT status, count(*) AS n FROM agent_commands WHERE created_at > now() - interval '1 hour' GROUP BY status"
    )
    got = {r["status"]: r["n"] for r in statuses}
    assert got == {"failed": 2, "completed": 18}
    assert sql.one("SELECT count(*) AS n FROM agent_commands WHERE status IN ('sent', 'ack') AND"
                   " created_at < now() - interval '1 hour'")["n"] == 40  # fmt: skip
    assert (
        sql.one("SELECT count(*) AS n FROM sessions WHERE state = 'running'")["n"] == 50
    )  # one new, one stopped


def test_neighbours_run_what_the_api_sends_them(pg):
    dsn = fresh_db(pg)
    sql = SQL(dsn)
    tenants = Tenants(dsn, complete_updates_sessions=False)
    tenants.seed()
    agent = f"{NEIGHBOUR_PREFIX}-1"
    sql.run(
        "INSERT INTO sessions (id, user_id, template_name, state, agent_id, created_at, updated_at)"
        " VALUES ('admin-firefox-browser-00000001', 'admin', 'firefox-browser', 'pending', %s, now(), now())",
        (agent,),
    )
    sql.run(
        "INSERT INTO agent_commands (command_id, agent_id, session_id, action, status, created_at)"
        " VALUES ('cmd-00000001', %s, 'admin-firefox-browser-00000001', 'start_session', 'pending', now())",
        (agent,),
    )
    tenants.tick()
    assert (
        sql.one("SELECT state FROM sessions WHERE id = 'admin-firefox-browser-00000001'")["state"]
        == "running"
    )
    assert (
        sql.one("SELECT status FROM agent_commands WHERE command_id = 'cmd-00000001'")["status"]
        == "completed"
    )
    sql.run("UPDATE sessions SET state = 'terminating' WHERE id = 'admin-firefox-browser-00000001'")
    sql.run(
        "INSERT INTO agent_commands (command_id, agent_id, session_id, action, status, created_at)"
        " VALUES ('cmd-00000002', %s, 'admin-firefox-browser-00000001', 'stop_session', 'sent', now())",
        (agent,),
    )
    tenants.tick()
    # as built: the complete leaves the session terminating
    assert (
        sql.one("SELECT state FROM sessions WHERE id = 'admin-firefox-browser-00000001'")["state"]
        == "terminating"
    )
