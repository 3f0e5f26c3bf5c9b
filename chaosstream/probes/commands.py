"""Probes about queued agent commands (`agent_commands`, read from PostgreSQL: no HTTP endpoint reads it).

All SQL is parameterised and runs in a read-only transaction with a statement timeout; every query
filters on indexed columns (`status`, `(agent_id,status)`, `session_id`, `command_id`, `created_at`).

Scope (`scope`, default `run`): a real install keeps `sent`/`ack`/`failed` rows forever and other tenants
keep adding commands, so by default the probes read only this run's commands — those of the sessions it
created, or, with `agent_id`, that agent's commands created since the run started (chaosstream.selection).
`scope: all` reads the whole table (since `since` where the probe has one). An explicit `since` keeps its
meaning: every command created since then.
"""

import datetime as dt
from typing import Any, Dict, List, Sequence, Tuple

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosstream.arguments import seconds, whole
from chaosstream.clients.database import query
from chaosstream.polling import mapping_progress, poll_interval_of, wait_until
from chaosstream.selection import check_scope, resolve_session_ids, run_sessions, run_started
from chaosstream.settings import resolve_settings
from chaosstream.timeutil import iso, parse_time, utcnow

__all__ = [
    "queued_commands",
    "command_status",
    "commands_for_session",
    "wait_for_commands_drained",
    "lost_commands",
]

COMMAND_STATUSES = ("pending", "sent", "ack", "completed", "failed")
ACTIONS = ("start_session", "stop_session", "hibernate_session", "wake_session")
OPEN_STATUSES = ["pending", "sent", "ack"]


def _naive_utc(when: dt.datetime) -> dt.datetime:
    return when.astimezone(dt.UTC).replace(tzinfo=None)


def _json_row(row: Dict[str, Any]) -> Dict[str, Any]:
    out = {}
    for key, value in row.items():
        out[key] = iso(parse_time(value)) if isinstance(value, dt.datetime) else value
    return out


def _filters(agent_id: str, action: str, session_ids: Sequence[str] = None) -> Tuple[str, List[Any]]:
    sql, params = "", []
    if agent_id:
        sql += " AND agent_id = %s"
        params.append(agent_id)
    if action:
        if action not in ACTIONS:
            raise ActivityFailed(f"Argument 'action' must be one of {', '.join(ACTIONS)}, not {action!r}.")
        sql += " AND action = %s"
        params.append(action)
    if session_ids is not None:
        sql += " AND session_id = ANY(%s)"
        params.append(list(session_ids))
    return sql, params


def _run_scope(agent_id: str, sessions: Sequence[str] = None) -> Tuple[str, List[Any], bool]:
    """SQL narrowing to this run: its sessions' commands, or (with `agent_id`) commands since it started.

    Returns `(sql, params, empty)`; `empty` when the run has nothing to look at yet: the query still
    runs (it checks the database is reachable) and finds nothing, so the probe holds vacuously, as a
    steady-state probe before the method must."""
    if sessions is not None:
        return "", [], False
    if agent_id:
        return " AND created_at >= %s", [_naive_utc(run_started())], False
    mine = run_sessions()
    return " AND session_id = ANY(%s)", [mine], not mine


def _check_agent(settings: Any, agent_id: str) -> None:
    """A typo in `agent_id` must not read as "nothing queued": the agent has to exist."""
    if agent_id is None:
        return
    if not isinstance(agent_id, str) or not agent_id:
        raise ActivityFailed(
            f"Argument 'agent_id' must be an agent id such as k8s-prod-cluster-1, not {agent_id!r}."
        )
    if not query(settings, "SELECT 1 FROM agents WHERE agent_id = %s", (agent_id,)):
        raise ActivityFailed(f"Unknown agent {agent_id!r}: no such row in the agents table.")


def queued_commands(
    agent_id: str = None,
    status: str = "pending",
    action: str = None,
    limit: int = 50,
    min_count: int = None,
    scope: str = "run",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Commands in `status` (default `pending`), optionally of one agent and one action; by default only
    this run's (`scope`, see the module).

    With `min_count` (for a method, where no tolerance applies) fewer than `min_count` matching
    commands raise `ActivityFailed` — e.g. "the stop_session must be queued as pending".

    Returns `{"count": n, "oldest_age_s": seconds or null, "ids": [command ids, oldest first, ≤ limit]}`.
    Tolerance example: `{"type": "range", "range": [1, 1000], "target": "count"}` (a stop_session is queued).
    """
    if status not in COMMAND_STATUSES:
        raise ActivityFailed(
            f"Argument 'status' must be one of {', '.join(COMMAND_STATUSES)}, not {status!r}."
        )
    whole(limit, "limit", minimum=0)
    if min_count is not None:
        whole(min_count, "min_count", minimum=0)
    check_scope(scope)
    settings = resolve_settings(configuration, secrets)
    extra, params = _filters(agent_id, action)
    if scope == "run":
        narrow, more, _ = _run_scope(agent_id)
        extra, params = extra + narrow, [*params, *more]
    _check_agent(settings, agent_id)
    summary = query(
        settings,
        f"SELECT count(*) AS n, min(created_at) AS oldest FROM agent_commands WHERE status = %s{extra}",
        [status, *params],
    )[0]
    ids = query(
        settings,
        f"SELECT command_id FROM agent_commands WHERE status = %s{extra} ORDER BY created_at LIMIT %s",
        [status, *params, limit],
    )
    oldest = parse_time(summary["oldest"])
    age = round((utcnow() - oldest).total_seconds(), 3) if oldest else None
    if min_count is not None and summary["n"] < min_count:
        others = query(
            settings,
            f"SELECT status, count(*) AS n FROM agent_commands WHERE created_at >= %s{extra} GROUP BY status",
            [_naive_utc(utcnow() - dt.timedelta(minutes=5)), *params],
        )
        seen = ", ".join(f"{r['n']} {r['status']}" for r in others) or "none"
        raise ActivityFailed(
            f"Expected at least {min_count} {action or ''} command(s) {status}, found {summary['n']} "
            f"(last 5 minutes: {seen})."
        )
    return {"count": summary["n"], "oldest_age_s": age, "ids": [r["command_id"] for r in ids]}


def command_status(
    command_id: str, configuration: Configuration = None, secrets: Secrets = None
) -> Dict[str, Any]:
    """One command's row: `{"commandId", "agentId", "sessionId", "action", "status", "errorMessage",
    "createdAt", "sentAt", "acknowledgedAt", "completedAt"}`. Raises `ActivityFailed` if unknown.

    Tolerance example: `{"type": "regex", "pattern": "^completed$", "target": "status"}`.
    """
    if not command_id or not isinstance(command_id, str):
        raise ActivityFailed(
            f"Argument 'command_id' must be a command id such as cmd-1a2b3c4d, not {command_id!r}."
        )
    settings = resolve_settings(configuration, secrets)
    rows = query(
        settings,
        'SELECT command_id AS "commandId", agent_id AS "agentId", session_id AS "sessionId", action, status, '
        'error_message AS "errorMessage", created_at AS "createdAt", sent_at AS "sentAt", '
        'acknowledged_at AS "acknowledgedAt", completed_at AS "completedAt" FROM agent_commands WHERE command_id = %s',
        (command_id,),
    )
    if not rows:
        raise ActivityFailed(f"Unknown command {command_id!r}: no such row in agent_commands.")
    return _json_row(rows[0])


def commands_for_session(
    session_id: str, configuration: Configuration = None, secrets: Secrets = None
) -> List[Dict[str, Any]]:
    """Every command of one session, oldest first: `[{"commandId", "action", "status", "errorMessage",
    "createdAt", "completedAt"}, ...]` (empty for a session without commands). Raises `ActivityFailed`
    for a session that has neither a row in `sessions` nor any command.

    Tolerance example: a `probe` tolerance that checks the last `stop_session` is `completed`.
    """
    if not session_id or not isinstance(session_id, str):
        raise ActivityFailed(f"Argument 'session_id' must be a session name, not {session_id!r}.")
    settings = resolve_settings(configuration, secrets)
    rows = query(
        settings,
        'SELECT command_id AS "commandId", agent_id AS "agentId", action, status, error_message AS "errorMessage", '
        'created_at AS "createdAt", completed_at AS "completedAt" FROM agent_commands WHERE session_id = %s '
        "ORDER BY created_at",
        (session_id,),
    )
    if not rows and not query(settings, "SELECT 1 FROM sessions WHERE id = %s", (session_id,)):
        raise ActivityFailed(
            f"Unknown session {session_id!r}: no row in sessions and no command in agent_commands."
        )
    return [_json_row(r) for r in rows]


def wait_for_commands_drained(
    agent_id: str = None,
    session_ids: List[str] = None,
    tag: str = None,
    action: str = None,
    timeout: float = 120.0,
    poll_interval: float = None,
    scope: str = "run",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Wait until no command is left `pending`, `sent` or `ack` (for one agent, for the selected
    sessions, or — by default — for this run; `scope: all` for the whole table); returns as soon as the
    queue is drained.

    Sessions are selected by `session_ids`, `tag`, or — when `tag` is "created" — the sessions this
    run created. Without any of them the default scope is the run (see the module). Returns `{"elapsed_s", "polls", "drained": n commands seen open at the start}`;
    raises `ActivityFailed` on timeout with what is still open.
    Tolerance example: `{"type": "probe", ... "func": "within", "arguments": {"target": "elapsed_s", "upper": 60}}`.
    """
    timeout = seconds(timeout, "timeout")
    settings = resolve_settings(configuration, secrets)
    interval = poll_interval_of(settings, poll_interval)
    sessions = None
    if session_ids or tag:
        sessions = resolve_session_ids(settings, session_ids, None if tag == "created" else tag)
    check_scope(scope)
    extra, params = _filters(agent_id, action, sessions)
    if scope == "run":
        narrow, more, _ = _run_scope(agent_id, sessions)
        extra, params = extra + narrow, [*params, *more]
    _check_agent(settings, agent_id)
    sql = f"SELECT command_id, action, status FROM agent_commands WHERE status = ANY(%s){extra} ORDER BY created_at LIMIT 20"
    first: List[int] = []

    def check():
        rows = query(settings, sql, [OPEN_STATUSES, *params], timeout=timeout)
        if not first:
            first.append(len(rows))
        return not rows, rows

    def describe(last):
        shown = ", ".join(f"{r['command_id']} {r['action']} {r['status']}" for r in (last or []))
        return f"Commands still open after {timeout:g}s: {shown}."

    _, elapsed, polls = wait_until(
        check, timeout, interval, describe, mapping_progress("queued commands", "drained")
    )
    return {"elapsed_s": elapsed, "polls": polls, "drained": first[0] if first else 0}


def lost_commands(
    since: str = None,
    stuck_after: float = 60.0,
    agent_id: str = None,
    scope: str = "run",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Commands that were lost: ended `failed`, or stuck in `pending`/`sent`/`ack` for more than
    `stuck_after` seconds. Which commands: by default this run's (its sessions', or with `agent_id` that
    agent's since the run started); with `since` (ISO-8601) every command created since then; with
    `scope: all` and no `since`, every command of the last 15 minutes.

    Returns `{"count": n, "failed": [{"commandId", "action", "errorMessage"}], "stuck": [{"commandId",
    "action", "status", "age_s"}], "since": iso}`.
    Tolerance example: `{"type": "range", "range": [0, 0], "target": "count"}` (no command lost).
    """
    check_scope(scope)
    settings = resolve_settings(configuration, secrets)
    if since:
        when = parse_time(since)
    else:
        when = run_started() if scope == "run" else utcnow() - dt.timedelta(minutes=15)
    if when is None:
        raise ActivityFailed(
            f"Argument 'since' must be an ISO-8601 time such as 2026-01-01T10:00:00Z, not {since!r}."
        )
    seconds(stuck_after, "stuck_after", allow_zero=True)
    extra, params = _filters(agent_id, None)
    if scope == "run" and not since and not agent_id:
        narrow, more, _ = _run_scope(None)
        extra, params = extra + narrow, [*params, *more]
    _check_agent(settings, agent_id)
    rows = query(
        settings,
        "SELECT command_id, action, status, error_message, created_at FROM agent_commands "
        f"WHERE created_at >= %s AND status = ANY(%s){extra} ORDER BY created_at LIMIT 1000",
        [_naive_utc(when), ["failed", *OPEN_STATUSES], *params],
    )
    now = utcnow()
    failed, stuck = [], []
    for row in rows:
        if row["status"] == "failed":
            failed.append(
                {
                    "commandId": row["command_id"],
                    "action": row["action"],
                    "errorMessage": row["error_message"],
                }
            )
            continue
        age = (now - parse_time(row["created_at"])).total_seconds()
        if age > stuck_after:
            stuck.append(
                {
                    "commandId": row["command_id"],
                    "action": row["action"],
                    "status": row["status"],
                    "age_s": round(age, 3),
                }
            )
    return {"count": len(failed) + len(stuck), "failed": failed, "stuck": stuck, "since": iso(when)}
