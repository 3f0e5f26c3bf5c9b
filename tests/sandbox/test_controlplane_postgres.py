"""EmbeddedPostgres and apply_schema against a real server."""

import psycopg
import pytest
from helpers.procs import pid_alive

from chaosstream.sandbox.postgres import EmbeddedPostgres, apply_schema


def test_start_restart_stop_leaves_nothing(tmp_path):
    server = EmbeddedPostgres(tmp_path / "data")
    dsn = server.start()
    assert dsn == f"postgresql://postgres@127.0.0.1:{server.port}/streamspace"
    first = server.pid
    assert first and pid_alive(first)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE keep (x int)")
    assert server.restart() == dsn
    assert server.pid != first and not pid_alive(first)
    with psycopg.connect(dsn) as conn:  # same data, same port
        assert conn.execute("SELECT count(*) FROM keep").fetchone() == (0,)
    last = server.pid
    server.stop()
    assert server.pid is None and not pid_alive(last)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=1)
    server.stop()  # idempotent


def _columns(dsn: str, table: str) -> set:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,)
        )
        return {r[0] for r in rows}


def _indexes(dsn: str, table: str) -> set:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (table,))}


def test_schema_with_and_without_migrations(pg):
    with_mig = pg.create_database("schema_with", template="template0")
    apply_schema(with_mig, with_migrations=True)
    apply_schema(with_mig, with_migrations=True)  # idempotent
    without = pg.create_database("schema_without", template="template0")
    apply_schema(without, with_migrations=False)

    assert "updated_at" in _columns(with_mig, "agent_commands")
    assert {"termination_reason", "terminated_at", "agent_id"} <= _columns(with_mig, "sessions")
    assert "updated_at" not in _columns(without, "agent_commands")
    assert not {"termination_reason", "terminated_at"} & _columns(without, "sessions")
    assert any("(agent_id, state)" in d for d in _indexes(with_mig, "sessions"))
    assert not any("(agent_id, state)" in d for d in _indexes(without, "sessions"))
    assert any("(agent_id, status)" in d for d in _indexes(without, "agent_commands"))
    assert any("(platform, status)" in d for d in _indexes(without, "agents"))

    with psycopg.connect(with_mig, autocommit=True) as conn:
        conn.execute("INSERT INTO agents (agent_id, platform) VALUES ('a1', 'kubernetes')")
        conn.execute(
            "INSERT INTO agent_commands (command_id, agent_id, action, updated_at)"
            " VALUES ('c1', 'a1', 'stop_session', '2000-01-01')"
        )
        conn.execute("UPDATE agent_commands SET status = 'sent' WHERE command_id = 'c1'")
        (updated,) = conn.execute("SELECT updated_at FROM agent_commands WHERE command_id = 'c1'").fetchone()
        assert updated.year > 2000  # BEFORE UPDATE trigger of migration 004
        agent = conn.execute("SELECT status, approval_status FROM agents").fetchone()
        assert agent == ("offline", "approved")  # column defaults
        seeds = conn.execute("SELECT id, role FROM users ORDER BY id").fetchall()
        assert seeds == [("admin", "admin"), ("user1", "user")]
        (manifest,) = conn.execute(
            "SELECT manifest FROM catalog_templates WHERE name = 'firefox-browser'"
        ).fetchone()
        assert manifest["spec"]["baseImage"] and manifest["spec"]["vnc"]["port"] == 3000
        assert conn.execute("SELECT k8s_namespace FROM organizations").fetchone() == ("streamspace",)


def test_control_plane_survives_postgres_restart(tmp_path):
    """Pooled connections die with the server; the control plane reconnects on the next request."""
    import httpx

    from chaosstream.sandbox.controlplane import ControlPlaneConfig, ControlPlaneThread

    server = EmbeddedPostgres(tmp_path / "data")
    try:
        dsn = server.start()
        apply_schema(dsn)
        config = ControlPlaneConfig(dsn=dsn, admin_password="pw", jwt_secret="s" * 32, bootstrap_key="a" * 64)
        with ControlPlaneThread(config) as thread, httpx.Client(base_url=thread.url) as http:
            assert (
                http.post("/api/v1/auth/login", json={"username": "admin", "password": "pw"}).status_code
                == 200
            )
            server.restart()
            assert (
                http.post("/api/v1/auth/login", json={"username": "admin", "password": "pw"}).status_code
                == 200
            )
            assert http.get("/sandbox/v1/events").status_code == 200
    finally:
        server.stop()
