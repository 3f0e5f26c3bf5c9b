"""Per-poll cost of the run-scoped probes on the production API and database, by installed size.

    python bench/probe_cost.py

For 10, 100 and 1,000 other tenants' sessions (each with a never-pruned `sent`/`ack`/`failed` command)
plus this run's 3 sessions, counts the API requests and SQL statements one call (one poll) of each
probe makes, and the rows its SQL reads back. Flat from 10 to 1,000 is the target: a probe's cost must
follow the run, not the install. Uses an embedded PostgreSQL and the sandbox control plane.
"""

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaosstream import probes, selection  # noqa: E402
from chaosstream.clients import database, streamspace  # noqa: E402
from chaosstream.sandbox.controlplane import ControlPlaneConfig, ControlPlaneThread  # noqa: E402
from chaosstream.sandbox.postgres import EmbeddedPostgres, apply_schema  # noqa: E402

SIZES = (10, 100, 1000)
PASSWORD = "bench-admin-password"


class Counter:
    def __init__(self) -> None:
        self.sql = self.rows = self.api = 0
        self._query, self._send = database.query, streamspace.StreamSpaceAPI._send
        counter = self

        def query(*args, **kwargs):
            counter.sql += 1
            rows = counter._query(*args, **kwargs)
            counter.rows += len(rows)
            return rows

        def send(api, method, path, **kwargs):
            if not path.endswith("/auth/login"):
                counter.api += 1
            return counter._send(api, method, path, **kwargs)

        self.patches = [(database, "query", query), (streamspace.StreamSpaceAPI, "_send", send)]
        for module in (probes.sessions, probes.commands, probes.agents):
            if hasattr(module, "query"):
                self.patches.append((module, "query", query))

    def __enter__(self) -> "Counter":
        self.saved = [(obj, name, getattr(obj, name)) for obj, name, _ in self.patches]
        for obj, name, value in self.patches:
            setattr(obj, name, value)
        return self

    def __exit__(self, *exc) -> None:
        for obj, name, value in self.saved:
            setattr(obj, name, value)


def seed(dsn: str, tenants: int, mine: list) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO agents (agent_id, platform, status, approval_status, last_heartbeat, created_at, updated_at)"
            " VALUES ('k8s-bench', 'kubernetes', 'online', 'approved', now(), now(), now()),"
            " ('k8s-neighbour', 'kubernetes', 'online', 'approved', now(), now(), now())"
        )
        for i in range(tenants):
            sid = f"user1-firefox-browser-t{i:06d}"
            conn.execute(
                "INSERT INTO sessions (id, user_id, template_name, state, agent_id, created_at, updated_at)"
                " VALUES (%s, 'user1', 'firefox-browser', 'running', 'k8s-neighbour', now() - interval '1 day',"
                " now() - interval '1 day')",
                (sid,),
            )
            conn.execute(
                "INSERT INTO agent_commands (command_id, agent_id, session_id, action, status, created_at)"
                " VALUES (%s, 'k8s-neighbour', %s, 'stop_session', %s, now() - interval '1 day')",
                (f"cmd-t{i:06d}", sid, ("sent", "ack", "failed")[i % 3]),
            )
        for sid in mine:
            conn.execute(
                "INSERT INTO sessions (id, user_id, template_name, state, agent_id, created_at, updated_at)"
                " VALUES (%s, 'admin', 'firefox-browser', 'running', 'k8s-bench', now(), now())",
                (sid,),
            )


def main() -> int:
    mine = [f"admin-firefox-browser-m{i}" for i in range(3)]
    calls = {
        "wait_for_sessions_state(running)": lambda c, s: probes.wait_for_sessions_state(
            "running", timeout=5, configuration=c, secrets=s
        ),
        "lost_commands": lambda c, s: probes.lost_commands(configuration=c, secrets=s),
        "wait_for_commands_drained": lambda c, s: probes.wait_for_commands_drained(
            timeout=5, configuration=c, secrets=s
        ),
        "queued_commands": lambda c, s: probes.queued_commands(configuration=c, secrets=s),
        "session_distribution": lambda c, s: probes.session_distribution(configuration=c, secrets=s),
        "sessions_survived": lambda c, s: probes.sessions_survived(configuration=c, secrets=s),
    }
    results = {name: {} for name in calls}
    with tempfile.TemporaryDirectory(prefix="probe-cost-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg")
        pg.start()
        try:
            for size in SIZES:
                dsn = pg.create_database(f"cost_{size}")
                apply_schema(dsn)
                seed(dsn, size, mine)
                config = ControlPlaneConfig(
                    dsn=dsn, admin_password=PASSWORD, jwt_secret="j" * 40, bootstrap_key="a" * 64
                )
                thread = ControlPlaneThread(config).start()
                try:
                    cfg = {"streamspace_api_url": thread.url, "streamspace_poll_interval": 0.05}
                    sec = {"username": "admin", "password": PASSWORD, "db_dsn": dsn}
                    selection.start_run()
                    selection.remember_sessions("default", mine)
                    for name, call in calls.items():
                        call(cfg, sec)  # warm: login
                        with Counter() as counter:
                            call(cfg, sec)
                        results[name][size] = (counter.api, counter.sql, counter.rows)
                finally:
                    thread.stop()
        finally:
            pg.stop()
    head = "".join(f" {f'{n} sessions':>22}" for n in SIZES)
    print(f"{'probe (one poll)':<36}{head}")
    flat = True
    for name, by_size in results.items():
        cells = "".join(f" {f'{a} API / {q} SQL / {r} rows':>22}" for a, q, r in (by_size[n] for n in SIZES))
        print(f"{name:<36}{cells}")
        flat = flat and len({by_size[n] for n in SIZES}) == 1
    print("flat from 10 to 1,000:", "yes" if flat else "NO")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
