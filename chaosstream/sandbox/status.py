"""`chaosstream sandbox status`: a small table of agents, sessions, pending commands and pods."""

from typing import Dict, List

import psycopg

__all__ = ["render_status"]


def _table(headers: List[str], rows: List[List[str]]) -> str:
    widths = (
        [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
        if rows
        else [len(h) for h in headers]
    )
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([line.format(*headers)] + [line.format(*map(str, r)) for r in rows])


def render_status(env: Dict[str, str]) -> str:
    out = [
        f"API {env['STREAMSPACE_API_URL']}  timers {env.get('STREAMSPACE_SANDBOX_TIMERS')}  "
        f"faults {env.get('STREAMSPACE_SANDBOX_FAULTS') or 'none'}  network {env.get('STREAMSPACE_SANDBOX_NETWORK')}"
    ]
    with psycopg.connect(env["STREAMSPACE_DB_DSN"], connect_timeout=5) as conn:
        agents = conn.execute(
            "SELECT agent_id, status, approval_status, "
            "round(extract(epoch FROM (now() at time zone 'utc') - last_heartbeat)::numeric, 1) "
            "FROM agents ORDER BY agent_id"
        ).fetchall()
        sessions = conn.execute(
            "SELECT state, count(*) FROM sessions GROUP BY state ORDER BY state"
        ).fetchall()
        commands = conn.execute(
            "SELECT status, count(*) FROM agent_commands GROUP BY status ORDER BY status"
        ).fetchall()
    out += ["", _table(["AGENT", "STATUS", "APPROVAL", "HEARTBEAT AGE (s)"], [list(r) for r in agents])]
    out += ["", _table(["SESSION STATE", "COUNT"], [list(r) for r in sessions])]
    out += ["", _table(["COMMAND STATUS", "COUNT"], [list(r) for r in commands])]
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=env["KUBECONFIG"]))
    pods = api.list_namespaced_pod(env.get("STREAMSPACE_NAMESPACE", "streamspace")).items
    rows = [
        [
            p.metadata.name,
            "Terminating" if p.metadata.deletion_timestamp else (p.status.phase or ""),
            p.status.pod_ip or "",
        ]
        for p in pods
    ]
    out += ["", _table(["POD", "PHASE", "IP"], rows)]
    return "\n".join(out)
