"""Probes about StreamSpace agents: status, heartbeat age, placement, recovery waits."""

from typing import Any, Dict, List

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosstream.arguments import seconds
from chaosstream.clients.database import query
from chaosstream.clients.streamspace import api_client
from chaosstream.polling import agents_progress, poll_interval_of, wait_until
from chaosstream.settings import resolve_settings
from chaosstream.timeutil import age_seconds, iso, parse_time, utcnow

__all__ = [
    "agent_status",
    "agents_online",
    "agent_heartbeat_age",
    "wait_for_agent_status",
    "wait_for_agents_online",
    "agent_for_session",
    "session_distribution",
    "no_sessions_placed_on",
    "sessions_assigned",
]

AGENT_STATUSES = ("online", "offline", "draining")


def _pick(agents: List[Dict[str, Any]], agent_id: str = None, agent_id_prefix: str = None) -> Dict[str, Any]:
    """The agent named by id, else the newest one whose id starts with the prefix, else the newest one."""
    if agent_id:
        matches = [a for a in agents if a.get("agentId") == agent_id]
    elif agent_id_prefix:
        matches = [a for a in agents if str(a.get("agentId", "")).startswith(agent_id_prefix)]
    else:
        matches = list(agents)
    if not matches:
        return {}
    return max(matches, key=lambda a: str(a.get("createdAt") or ""))


def _describe_agents(agents: List[Dict[str, Any]]) -> str:
    if not agents:
        return "no agent is registered"
    return "registered agents: " + ", ".join(f"{a.get('agentId')} ({a.get('status')})" for a in agents[:10])


def _check_status(status: str, name: str = "status") -> str:
    if status not in AGENT_STATUSES:
        raise ActivityFailed(f"Argument '{name}' must be one of {', '.join(AGENT_STATUSES)}, not {status!r}.")
    return status


def _summary(agent: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "agentId": agent.get("agentId"),
        "status": agent.get("status"),
        "approvalStatus": agent.get("approvalStatus"),
        "lastHeartbeat": agent.get("lastHeartbeat"),
        "heartbeat_age_s": age_seconds(agent.get("lastHeartbeat")),
    }


def agent_status(
    agent_id: str = None,
    agent_id_prefix: str = None,
    timeout: float = 10.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Status of one agent as the control plane sees it (`GET /api/v1/admin/agents`).

    The agent is named by `agent_id`, or by `agent_id_prefix` (the newest agent whose id starts with it:
    the Helm chart names agents `<prefix>-<pod name>`), or is the newest agent when neither is given.

    Returns `{"agentId", "status", "approvalStatus", "lastHeartbeat", "heartbeat_age_s"}`; raises
    `ActivityFailed` when no such agent exists or the API cannot be reached.

    Tolerance example: `{"type": "regex", "pattern": "^online$", "target": "status"}`.
    """
    settings = resolve_settings(configuration, secrets)
    with api_client(settings, timeout=seconds(timeout, "timeout")) as api:
        agents = api.list_agents()
    agent = _pick(agents, agent_id, agent_id_prefix)
    if not agent:
        raise ActivityFailed(
            f"Unknown agent {agent_id or (agent_id_prefix or '') + '*'}: {_describe_agents(agents)}; check "
            "'agent_id' / 'agent_id_prefix'."
        )
    return _summary(agent)


def agents_online(
    min_count: int = 1,
    agent_id_prefix: str = None,
    max_heartbeat_age: float = None,
    timeout: float = 10.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """True when at least `min_count` agents are `online` (optionally with a heartbeat younger than
    `max_heartbeat_age` seconds, and an id starting with `agent_id_prefix`).

    Tolerance example: `true`.
    """
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 0:
        raise ActivityFailed(f"Argument 'min_count' must be a whole number ≥ 0, not {min_count!r}.")
    if max_heartbeat_age is not None:
        seconds(max_heartbeat_age, "max_heartbeat_age")
    settings = resolve_settings(configuration, secrets)
    with api_client(settings, timeout=seconds(timeout, "timeout")) as api:
        agents = api.list_agents()
    count = 0
    for agent in agents:
        if agent_id_prefix and not str(agent.get("agentId", "")).startswith(agent_id_prefix):
            continue
        if agent.get("status") != "online":
            continue
        age = age_seconds(agent.get("lastHeartbeat"))
        if max_heartbeat_age is not None and (age is None or age > max_heartbeat_age):
            continue
        count += 1
    return count >= min_count


def agent_heartbeat_age(
    agent_id: str = None,
    agent_id_prefix: str = None,
    source: str = "api",
    timeout: float = 10.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> float:
    """Seconds since the agent's last heartbeat, read from the API (`lastHeartbeat`) or, with
    `source="db"`, from `agents.last_heartbeat` (naive timestamps are taken as UTC).

    Raises `ActivityFailed` if the agent is unknown or has never sent a heartbeat.

    Tolerance example: `{"type": "range", "range": [0, 45]}` (StreamSpace marks agents stale after 45 s).
    """
    settings = resolve_settings(configuration, secrets)
    if source not in ("api", "db"):
        raise ActivityFailed(f"Argument 'source' must be 'api' or 'db', not {source!r}.")
    seconds(timeout, "timeout")
    if source == "db":
        rows = query(
            settings,
            "SELECT agent_id, last_heartbeat FROM agents WHERE (%s::text IS NULL OR agent_id = %s) "
            "AND (%s::text IS NULL OR agent_id LIKE %s) ORDER BY created_at DESC LIMIT 1",
            (agent_id, agent_id, agent_id_prefix, (agent_id_prefix or "") + "%"),
        )
        if not rows:
            raise ActivityFailed(f"Unknown agent {agent_id or agent_id_prefix or ''!r} in the agents table.")
        last = rows[0]["last_heartbeat"]
        name = rows[0]["agent_id"]
    else:
        agent = agent_status(agent_id, agent_id_prefix, timeout, configuration, secrets)
        last, name = agent["lastHeartbeat"], agent["agentId"]
    age = age_seconds(last)
    if age is None:
        raise ActivityFailed(f"Agent {name} has never sent a heartbeat (lastHeartbeat is empty).")
    return age


def wait_for_agent_status(
    status: str = "online",
    agent_id: str = None,
    agent_id_prefix: str = None,
    timeout: float = 60.0,
    poll_interval: float = None,
    after_rollout: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Wait until an agent reaches `status` (`online`, `offline`, `draining`); measure how long it took.

    Logs in (`POST /api/v1/auth/login`, or uses the given token) and polls `GET /api/v1/admin/agents`
    every `poll_interval` seconds (default: configuration `streamspace_poll_interval`), returning as
    soon as the condition holds. The agent is `agent_id`, or the newest agent whose id starts with
    `agent_id_prefix`, or any agent when neither is given.

    With `after_rollout=true` the wait first lets the agent Deployment's rollout finish and then only
    counts the agent as `online` once it has sent a heartbeat after that moment: after a restart this
    measures the reconnection of the *new* pod, not the old pod's last heartbeats.

    Returns `{"agentId", "status", "elapsed_s", "polls"}`; raises `ActivityFailed` on timeout, on
    401 and when the API is unreachable.

    Tolerance example: `{"type": "range", "range": [0, 30], "target": "elapsed_s"}`.
    """
    _check_status(status)
    timeout = seconds(timeout, "timeout")
    settings = resolve_settings(configuration, secrets)
    interval = poll_interval_of(settings, poll_interval)
    fresh_after = None
    started = utcnow()
    if after_rollout:
        from chaosstream.clients.rollout import wait_for_rollout

        rollout = wait_for_rollout(settings, secrets, timeout, interval)
        fresh_after = parse_time(rollout["completed_at"])
    remaining = max(0.1, timeout - (utcnow() - started).total_seconds())

    # One slow request must not outlast the wait's own timeout.
    with api_client(settings, timeout=min(settings.http_timeout, timeout)) as api:

        def check():
            agents = api.list_agents()
            if agent_id or agent_id_prefix:
                candidates = [_pick(agents, agent_id, agent_id_prefix)]
            else:
                candidates = [a for a in agents if a.get("status") == status] or agents[:1]
            for agent in candidates:
                if not agent or agent.get("status") != status:
                    continue
                if fresh_after is not None and status == "online":
                    beat = parse_time(agent.get("lastHeartbeat"))
                    if beat is None or beat < fresh_after:
                        continue
                return True, {"agent": agent, "agents": agents}
            return False, {"agent": candidates[0] if candidates else {}, "agents": agents}

        def describe(last):
            who = agent_id or (f"{agent_id_prefix}*" if agent_id_prefix else "any agent")
            seen = _describe_agents(last["agents"]) if last else "no answer"
            return f"Agent {who} did not reach status '{status}' within {timeout:g}s ({seen})."

        found, elapsed, polls = wait_until(
            check, remaining, interval, describe, agents_progress(agent_id or agent_id_prefix, status)
        )
    total = round((utcnow() - started).total_seconds(), 3) if after_rollout else elapsed
    agent = found["agent"]
    result = {
        "agentId": agent.get("agentId"),
        "status": agent.get("status"),
        "elapsed_s": total,
        "polls": polls,
    }
    if fresh_after is not None:
        result["rollout_completed_at"] = iso(fresh_after)
    return result


def wait_for_agents_online(
    min_count: int = 1,
    agent_id_prefix: str = None,
    timeout: float = 60.0,
    poll_interval: float = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Wait until at least `min_count` agents (with ids starting with `agent_id_prefix`, if given) are
    `online`; returns as soon as they are. Use it after healing one agent among several, where
    "an agent is online" would already hold.

    Returns `{"online": n, "agents": [ids], "elapsed_s", "polls"}`; raises `ActivityFailed` on timeout.
    Tolerance example: `{"type": "probe", ... "func": "within", "arguments": {"target": "elapsed_s", "upper": 30}}`.
    """
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ActivityFailed(f"Argument 'min_count' must be a whole number ≥ 1, not {min_count!r}.")
    timeout = seconds(timeout, "timeout")
    settings = resolve_settings(configuration, secrets)
    interval = poll_interval_of(settings, poll_interval)
    # One slow request must not outlast the wait's own timeout.
    with api_client(settings, timeout=min(settings.http_timeout, timeout)) as api:

        def check():
            agents = [
                a
                for a in api.list_agents()
                if a.get("status") == "online"
                and (not agent_id_prefix or str(a.get("agentId", "")).startswith(agent_id_prefix))
            ]
            return len(agents) >= min_count, agents

        def describe(last):
            return f"Only {len(last or [])} agent(s) online after {timeout:g}s, {min_count} needed."

        agents, elapsed, polls = wait_until(
            check,
            timeout,
            interval,
            describe,
            agents_progress(f"{min_count} x {agent_id_prefix or 'any'}", "online"),
        )
    return {
        "online": len(agents),
        "agents": sorted(a.get("agentId") for a in agents),
        "elapsed_s": elapsed,
        "polls": polls,
    }


def agent_for_session(
    session_id: str,
    timeout: float = 10.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """The agent that serves a session, from `sessions.agent_id` (the API does not return it).

    Returns `{"session": <id>, "agentId": <id or null>, "agentStatus": <status or null>, "state": ...}`;
    raises `ActivityFailed` for an unknown session.

    Tolerance example: `{"type": "regex", "pattern": ".+", "target": "agentId"}` (the session still has an agent).
    """
    if not session_id or not isinstance(session_id, str):
        raise ActivityFailed(
            "Argument 'session_id' must be a session name such as admin-firefox-browser-1a2b3c4d."
        )
    seconds(timeout, "timeout")
    settings = resolve_settings(configuration, secrets)
    rows = query(
        settings,
        "SELECT s.id, s.state, s.agent_id, a.status AS agent_status FROM sessions s "
        "LEFT JOIN agents a ON a.agent_id = s.agent_id WHERE s.id = %s",
        (session_id,),
    )
    if not rows:
        raise ActivityFailed(f"Unknown session {session_id!r}: no such row in the sessions table.")
    row = rows[0]
    return {
        "session": row["id"],
        "agentId": row["agent_id"],
        "agentStatus": row["agent_status"],
        "state": row["state"],
    }


def session_distribution(
    states: List[str] = None,
    agent_id_prefix: str = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Sessions per agent among online agents (default states: running, hibernated, pending — the ones
    StreamSpace's selector counts), and the max−min spread.

    Returns `{"per_agent": {agentId: n}, "spread": int, "agents": int, "sessions": int, "unassigned": int}`.

    Tolerance example: `{"type": "range", "range": [0, 2], "target": "spread"}` (load balanced within ±2).
    """
    if states is not None and (
        not isinstance(states, list) or not all(isinstance(s, str) and s for s in states)
    ):
        raise ActivityFailed(
            f"Argument 'states' must be a list of session states such as [\"running\"], not {states!r}."
        )
    states = list(states or ["running", "hibernated", "pending"])
    settings = resolve_settings(configuration, secrets)
    prefix = (agent_id_prefix or "") + "%"
    agents = query(
        settings,
        "SELECT agent_id FROM agents WHERE status = 'online' AND agent_id LIKE %s ORDER BY agent_id",
        (prefix,),
    )
    counts = query(
        settings,
        "SELECT agent_id, count(*) AS n FROM sessions WHERE state = ANY(%s) GROUP BY agent_id",
        (states,),
    )
    per_agent = {row["agent_id"]: 0 for row in agents}
    unassigned = 0
    total = 0
    for row in counts:
        total += row["n"]
        if row["agent_id"] is None:
            unassigned += row["n"]
        elif row["agent_id"] in per_agent:
            per_agent[row["agent_id"]] = row["n"]
    values = list(per_agent.values())
    spread = (max(values) - min(values)) if values else 0
    return {
        "per_agent": per_agent,
        "spread": spread,
        "agents": len(values),
        "sessions": total,
        "unassigned": unassigned,
    }


def no_sessions_placed_on(
    agent_id: str = None,
    since: str = None,
    agent_status: str = None,
    raise_on_failure: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Check that no session was placed on an agent while it could not serve it.

    The agents are `agent_id`, or every agent currently in `agent_status` (e.g. `offline`). The window
    starts at `since` (ISO-8601) if given; otherwise, for an agent that is not online, when it left
    `online` (its `updated_at`: heartbeats stop touching the row then), else 10 minutes ago. With
    `raise_on_failure=true` (for a method) a misplaced session raises `ActivityFailed`.

    Returns `{"ok": bool, "placed": [session ids], "agents": {agentId: window start}}`.
    Tolerance example: `{"type": "probe", ... "func": "all_true", "arguments": {"keys": ["ok"]}}`.
    """
    import datetime as dt

    settings = resolve_settings(configuration, secrets)
    when = parse_time(since) if since else None
    if since and when is None:
        raise ActivityFailed(
            f"Argument 'since' must be an ISO-8601 time such as 2026-01-01T10:00:00Z, not {since!r}."
        )
    if agent_id:
        rows = query(
            settings, "SELECT agent_id, status, updated_at FROM agents WHERE agent_id = %s", (agent_id,)
        )
        if not rows:
            raise ActivityFailed(f"Unknown agent {agent_id!r}: no such row in the agents table.")
    elif agent_status:
        _check_status(agent_status, "agent_status")
        rows = query(
            settings, "SELECT agent_id, status, updated_at FROM agents WHERE status = %s", (agent_status,)
        )
    else:
        raise ActivityFailed("Give 'agent_id' or 'agent_status' (e.g. offline) to say which agents to check.")
    windows: Dict[str, dt.datetime] = {}
    for row in rows:
        if when is not None:
            start = when
        elif row["status"] != "online" and row["updated_at"] is not None:
            start = parse_time(row["updated_at"])
        else:
            start = utcnow() - dt.timedelta(minutes=10)
        windows[row["agent_id"]] = start
    placed: List[str] = []
    for agent, start in windows.items():
        found = query(
            settings,
            "SELECT id FROM sessions WHERE agent_id = %s AND created_at >= %s ORDER BY created_at",
            (agent, start.astimezone(dt.UTC).replace(tzinfo=None)),
        )
        placed.extend(r["id"] for r in found)
    if raise_on_failure and placed:
        raise ActivityFailed(f"Sessions were placed on unavailable agent(s) {sorted(windows)}: {placed}.")
    return {"ok": not placed, "placed": placed, "agents": {a: iso(w) for a, w in windows.items()}}


def sessions_assigned(
    session_ids: List[str] = None,
    tag: str = None,
    raise_on_failure: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Whether each selected session (by ids, `tag`, or created earlier in this run) is still served:
    `sessions.agent_id` is set and that agent is `online`. Sessions of a restarted agent that lost their
    agent (a new agent id per pod, or ids cleared on disconnect) show up here as orphans.

    Returns `{"ok": bool, "checked": n, "orphans": {session: agentId or null}}`; before the run created
    any session it holds with `checked: 0`. With `raise_on_failure=true` orphans raise `ActivityFailed`.
    Tolerance example: `{"type": "probe", ... "func": "all_true", "arguments": {"keys": ["ok"]}}`.
    """
    from chaosstream.selection import resolve_session_ids

    settings = resolve_settings(configuration, secrets)
    ids = resolve_session_ids(settings, session_ids, tag, required=False)
    rows = query(
        settings,
        "SELECT s.id, s.agent_id, a.status FROM sessions s LEFT JOIN agents a ON a.agent_id = s.agent_id "
        "WHERE s.id = ANY(%s)",
        (ids,),
    )
    found = {r["id"]: r for r in rows}
    orphans = {
        sid: (found[sid]["agent_id"] if sid in found else None)
        for sid in ids
        if sid not in found or found[sid]["agent_id"] is None or found[sid]["status"] != "online"
    }
    if raise_on_failure and orphans:
        raise ActivityFailed(f"Sessions no longer served by an online agent (session: agent): {orphans}.")
    return {"ok": not orphans, "checked": len(ids), "orphans": orphans}
