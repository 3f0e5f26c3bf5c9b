"""Latency of every probe against a running sandbox, then of the command probes on a large table.

1. Starts a sandbox (embedded PostgreSQL, control plane, Kubernetes emulator, one agent), creates two
   sessions and one command history, and prints p50/p95 of each probe over N calls (default 200).
2. Loads `agent_commands` with 1,000,000 rows (mostly `completed`, a few hundred `pending`/`sent`/`ack`/
   `failed`, spread over 10 agents and ~30 days of `created_at`) and `sessions` with 10,000 rows, runs
   ANALYZE, prints p50/p95 of `queued_commands` and `lost_commands` (several argument sets), and the
   EXPLAIN ANALYZE plan of every SQL statement they ran. Target: p95 <= 10 ms, no Seq Scan on
   agent_commands.

    python bench/probe_latency.py [N]
"""

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import psycopg

from chaosstream import actions, probes
from chaosstream.probes import commands as command_probes
from chaosstream.sandbox.daemon.client import start_daemon, stop_daemon
from chaosstream.timeutil import iso, utcnow

ROWS = 1_000_000
SESSIONS = 10_000
BENCH_AGENTS = 10


def _pct(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _measure(func: Callable[[], Any], n: int) -> Tuple[float, float]:
    func()  # warm-up: login, connection, client creation
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        func()
        samples.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(samples), _pct(samples, 0.95)


def _report(rows: List[Tuple[str, float, float]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'probe':<{width}}  {'p50 ms':>8}  {'p95 ms':>8}")
    for name, p50, p95 in rows:
        flag = "" if p95 <= 10.0 else "  (> 10 ms)"
        print(f"{name:<{width}}  {p50:8.2f}  {p95:8.2f}{flag}")


def _load(dsn: str) -> float:
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO agents (agent_id, platform, region, status, last_heartbeat, approval_status) "
            "SELECT 'bench-agent-' || g, 'kubernetes', 'bench', 'offline', now() - interval '1 day', 'approved' "
            "FROM generate_series(0, %s) g ON CONFLICT (agent_id) DO NOTHING",
            (BENCH_AGENTS - 1,),
        )
        # One command every ~2.6 s over the last ~30 days; 1 in 5,000 is pending, sent, ack or failed.
        conn.execute(
            "INSERT INTO agent_commands (command_id, agent_id, session_id, action, status, error_message, "
            "created_at, sent_at, acknowledged_at, completed_at) "
            "SELECT 'cmd-bench-' || g, 'bench-agent-' || ((g / 5000) %% %s), 'bench-session-' || (g %% %s), "
            "(ARRAY['start_session','stop_session','hibernate_session','wake_session'])[1 + g %% 4], "
            "s.status, CASE WHEN s.status = 'failed' THEN 'agent is not connected' END, "
            "t.created, t.created, t.created, CASE WHEN s.status = 'completed' THEN t.created END "
            "FROM generate_series(1, %s) g, "
            "LATERAL (SELECT (now() AT TIME ZONE 'UTC') - g * interval '2.6 seconds' AS created) t, "
            "LATERAL (SELECT CASE g %% 5000 WHEN 1 THEN 'pending' WHEN 2 THEN 'sent' WHEN 3 THEN 'ack' "
            "WHEN 4 THEN 'failed' ELSE 'completed' END AS status) s",
            (BENCH_AGENTS, SESSIONS, ROWS),
        )
        conn.execute(
            "INSERT INTO sessions (id, user_id, template_name, state, agent_id, created_at, updated_at, tags) "
            "SELECT 'bench-session-' || g, 'admin', 'firefox-browser', "
            "(ARRAY['running','running','running','hibernated','terminated'])[1 + g %% 5], "
            "'bench-agent-' || (g %% %s), (now() AT TIME ZONE 'UTC') - g * interval '1 minute', "
            "(now() AT TIME ZONE 'UTC'), ARRAY['bench'] FROM generate_series(0, %s) g",
            (BENCH_AGENTS, SESSIONS - 1),
        )
        conn.execute("ANALYZE agent_commands")
        conn.execute("ANALYZE sessions")
        conn.execute("ANALYZE agents")
    return time.monotonic() - started


def main(n: int = 200) -> None:
    state = Path(tempfile.mkdtemp(prefix="css-bench-"))
    env = start_daemon(state, agents=1, parent_pid=os.getpid())
    try:
        cfg = {
            "streamspace_api_url": env["STREAMSPACE_API_URL"],
            "streamspace_namespace": env["STREAMSPACE_NAMESPACE"],
            "streamspace_poll_interval": float(env["STREAMSPACE_POLL_INTERVAL"]),
        }
        sec = {
            "username": env["STREAMSPACE_USERNAME"],
            "password": env["STREAMSPACE_PASSWORD"],
            "db_dsn": env["STREAMSPACE_DB_DSN"],
            "KUBECONFIG": env["KUBECONFIG"],
        }
        agent = env["STREAMSPACE_AGENT_ID"]
        kw: Dict[str, Any] = {"configuration": cfg, "secrets": sec}
        created = actions.create_sessions(count=2, **kw)
        sid = created["sessions"][0]
        command = created["commands"][sid]
        probes.wait_for_sessions_state("running", session_ids=created["sessions"], timeout=60, **kw)

        calls: Dict[str, Callable[[], Any]] = {
            "agent_status": lambda: probes.agent_status(agent_id=agent, **kw),
            "agents_online": lambda: probes.agents_online(**kw),
            "wait_for_agents_online": lambda: probes.wait_for_agents_online(**kw),
            "agent_heartbeat_age[api]": lambda: probes.agent_heartbeat_age(agent_id=agent, **kw),
            "agent_heartbeat_age[db]": lambda: probes.agent_heartbeat_age(agent_id=agent, source="db", **kw),
            "wait_for_agent_status": lambda: probes.wait_for_agent_status("online", agent_id=agent, **kw),
            "agent_for_session": lambda: probes.agent_for_session(sid, **kw),
            "session_distribution": lambda: probes.session_distribution(**kw),
            "no_sessions_placed_on": lambda: probes.no_sessions_placed_on(agent_status="offline", **kw),
            "sessions_assigned": lambda: probes.sessions_assigned(session_ids=[sid], **kw),
            "api_health": lambda: probes.api_health(**kw),
            "agent_rollout_complete": lambda: probes.agent_rollout_complete(**kw),
            "agent_pods_ready": lambda: probes.agent_pods_ready(**kw),
            "session_state": lambda: probes.session_state(sid, **kw),
            "sessions_in_state": lambda: probes.sessions_in_state("running", **kw),
            "sessions_survived": lambda: probes.sessions_survived(session_ids=[sid], **kw),
            "all_sessions_running": lambda: probes.all_sessions_running(session_ids=[sid], **kw),
            "wait_for_sessions_state": lambda: probes.wait_for_sessions_state(
                "running", session_ids=[sid], **kw
            ),
            "session_pods_running": lambda: probes.session_pods_running(session_ids=[sid], **kw),
            "wait_for_session_pods": lambda: probes.wait_for_session_pods(session_ids=[sid], **kw),
            "queued_commands": lambda: probes.queued_commands(**kw),
            "command_status": lambda: probes.command_status(command, **kw),
            "commands_for_session": lambda: probes.commands_for_session(sid, **kw),
            "wait_for_commands_drained": lambda: probes.wait_for_commands_drained(**kw),
            "lost_commands": lambda: probes.lost_commands(**kw),
        }
        missing = sorted(set(probes.__all__) - {name.split("[")[0] for name in calls})
        print(f"Sandbox {env['STREAMSPACE_API_URL']}; {n} calls per probe (after one warm-up call).")
        if missing:
            print(f"Not measured (no call defined here): {', '.join(missing)}")
        _report([(name, *_measure(func, n)) for name, func in calls.items()])

        print(f"\nLoading {ROWS:,} agent_commands rows and {SESSIONS:,} sessions ...")
        took = _load(env["STREAMSPACE_DB_DSN"])
        with psycopg.connect(env["STREAMSPACE_DB_DSN"]) as conn:
            counts = dict(
                conn.execute("SELECT status, count(*) FROM agent_commands GROUP BY status").fetchall()
            )
        print(f"Loaded in {took:.1f}s; agent_commands by status: {counts}")

        month_ago = iso(utcnow().replace(microsecond=0) - __import__("datetime").timedelta(days=40))
        big: Dict[str, Callable[[], Any]] = {
            "queued_commands()": lambda: probes.queued_commands(**kw),
            "queued_commands(agent_id)": lambda: probes.queued_commands(agent_id="bench-agent-3", **kw),
            "queued_commands(status=sent, action)": lambda: probes.queued_commands(
                status="sent", action="stop_session", **kw
            ),
            "lost_commands()": lambda: probes.lost_commands(**kw),
            "lost_commands(since=40 days ago)": lambda: probes.lost_commands(since=month_ago, **kw),
            "lost_commands(agent_id, since=40d)": lambda: probes.lost_commands(
                since=month_ago, agent_id="bench-agent-3", **kw
            ),
        }
        # Record the SQL the two probes send, to EXPLAIN exactly that.
        seen: Dict[Tuple[str, str], Tuple[str, Any]] = {}
        current = [""]
        real_query = command_probes.query

        def recording_query(settings: Any, sql: str, params: Any = ()) -> Any:
            seen.setdefault((current[0], sql), (sql, params))
            return real_query(settings, sql, params)

        command_probes.query = recording_query
        rows = []
        try:
            for name, func in big.items():
                current[0] = name
                rows.append((name, *_measure(func, n)))
        finally:
            command_probes.query = real_query
        print(f"\nWith {ROWS:,} commands ({n} calls each):")
        _report(rows)

        print("\nEXPLAIN ANALYZE of every statement these probes ran:")
        seq_scans = []
        with psycopg.connect(env["STREAMSPACE_DB_DSN"]) as conn:
            for (name, _), (sql, params) in seen.items():
                plan = [r[0] for r in conn.execute("EXPLAIN (ANALYZE, COSTS OFF) " + sql, params).fetchall()]
                print(f"\n-- {name}: {sql}\n--   params: {params}")
                for line in plan:
                    print("   " + line)
                if any("Seq Scan on agent_commands" in line for line in plan):
                    seq_scans.append(sql)
        print()
        print(
            "Seq Scan on agent_commands: " + ("none" if not seq_scans else f"{len(seq_scans)} statement(s)")
        )
    finally:
        stop_daemon(state)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
