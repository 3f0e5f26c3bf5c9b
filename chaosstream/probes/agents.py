"""Probes about StreamSpace agents: status, heartbeat age, placement, recovery waits."""

import time
from typing import Any, Dict, List

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosstream.arguments import flag, seconds
from chaosstream.clients.database import query
from chaosstream.clients.streamspace import api_client
from chaosstream.polling import agents_progress, poll_interval_of, wait_until
from chaosstream.selection import remember_agents, remember_fault_end, targeted_agents
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
# Faults after which "online" means a replacement pod's agent (recognised by identity), not the same socket.
REPLACING_ACTIONS = ("restart_agent", "kill_agent_pod", "scale_agents", "scale_agents_restore")


def _in_cluster(agent: Dict[str, Any], agent_id_prefix: str = None, region: str = None) -> bool:
    """One cluster's agents: every cluster of the chart uses the same id prefix, so the `region` the agents
    register with (their REGION env) is what tells clusters apart (`cluster_id` is never written)."""
    if agent_id_prefix and not str(agent.get("agentId", "")).startswith(agent_id_prefix):
        return False
    return not region or agent.get("region") == region


def _pick(
    agents: List[Dict[str, Any]], agent_id: str = None, agent_id_prefix: str = None, region: str = None
) -> Dict[str, Any]:
    """The agent named by id, else the newest one whose id starts with the prefix (and in `region`), else the
    newest one (in `region`)."""
    if region:
        agents = [a for a in agents if _in_cluster(a, None, region)]
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
    region: str = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Status of one agent as the control plane sees it (`GET /api/v1/admin/agents`).

    The agent is named by `agent_id`, or by `agent_id_prefix` (the newest agent whose id starts with it:
    the Helm chart names agents `<prefix>-<pod name>`), or is the newest agent when neither is given.
    `region` keeps only the agents of one cluster (every cluster of the chart uses the same prefix).

    Returns `{"agentId", "status", "approvalStatus", "lastHeartbeat", "heartbeat_age_s"}`; raises
    `ActivityFailed` when no such agent exists or the API cannot be reached.

    Tolerance example: `{"type": "regex", "pattern": "^online$", "target": "status"}`.
    """
    settings = resolve_settings(configuration, secrets)
    with api_client(settings, timeout=seconds(timeout, "timeout")) as api:
        agents = api.list_agents()
    agent = _pick(agents, agent_id, agent_id_prefix, region)
    if not agent:
        where = f" in region {region!r}" if region else ""
        raise ActivityFailed(
            f"Unknown agent {agent_id or (agent_id_prefix or '') + '*'}{where}: {_describe_agents(agents)}; check "
            "'agent_id' / 'agent_id_prefix' / 'region'."
        )
    return _summary(agent)


def agents_online(
    min_count: int = 1,
    agent_id_prefix: str = None,
    max_heartbeat_age: float = None,
    region: str = None,
    timeout: float = 10.0,
    count_standbys: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """True when at least `min_count` agents are `online` (optionally with a heartbeat younger than
    `max_heartbeat_age` seconds, an id starting with `agent_id_prefix` and, when given, the agent `region`:
    every cluster of the chart uses the same default prefix, so the region scopes the count to one cluster).

    With `count_standbys=true` an HA agent (replicas sharing one fixed id, ENABLE_HA=true) also counts its
    ready standbys while one of its pods holds its Lease `streamspace-agent-<id>` (read from the activity's
    kube context): on an HA install redundancy is standby pods, not more agent ids.

    Tolerance example: `true`.
    """
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 0:
        raise ActivityFailed(f"Argument 'min_count' must be a whole number ≥ 0, not {min_count!r}.")
    if max_heartbeat_age is not None:
        seconds(max_heartbeat_age, "max_heartbeat_age")
    settings = resolve_settings(configuration, secrets)
    with api_client(settings, timeout=seconds(timeout, "timeout")) as api:
        agents = api.list_agents()
    standbys = _standbys(settings, secrets) if flag(count_standbys, "count_standbys") else {}
    count = 0
    for agent in agents:
        if not _in_cluster(agent, agent_id_prefix, region):
            continue
        if agent.get("status") != "online":
            continue
        age = age_seconds(agent.get("lastHeartbeat"))
        if max_heartbeat_age is not None and (age is None or age > max_heartbeat_age):
            continue
        count += 1 + standbys.get(str(agent.get("agentId")), 0)
    return count >= min_count


def _standbys(settings: Any, secrets: Any) -> Dict[str, int]:
    """Ready HA standbys per agent id in the activity's own kube context (faults.targets.ha_standbys)."""
    from chaosstream.clients.kube import Cluster
    from chaosstream.faults.targets import ha_standbys

    return ha_standbys(Cluster(secrets, settings.kube_timeout), settings.namespace, settings.agent_selector)


def agent_heartbeat_age(
    agent_id: str = None,
    agent_id_prefix: str = None,
    source: str = "api",
    timeout: float = 10.0,
    region: str = None,
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
            "AND (%s::text IS NULL OR agent_id LIKE %s) AND (%s::text IS NULL OR region = %s) "
            "ORDER BY created_at DESC LIMIT 1",
            (
                agent_id,
                agent_id,
                agent_id_prefix,
                (agent_id_prefix or "") + "%",
                region or None,
                region or None,
            ),
        )
        if not rows:
            raise ActivityFailed(f"Unknown agent {agent_id or agent_id_prefix or ''!r} in the agents table.")
        last = rows[0]["last_heartbeat"]
        name = rows[0]["agent_id"]
    else:
        agent = agent_status(agent_id, agent_id_prefix, timeout, region or None, configuration, secrets)
        last, name = agent["lastHeartbeat"], agent["agentId"]
    age = age_seconds(last)
    if age is None:
        raise ActivityFailed(f"Agent {name} has never sent a heartbeat (lastHeartbeat is empty).")
    return age


def _pending_finding(agents: List[Dict[str, Any]]) -> str:
    """One sentence per pending agent: the finding a wait reports instead of passing or timing out."""
    parts = [
        f"new agent {a.get('agentId')} awaits approval since {a.get('createdAt') or 'its registration'}"
        for a in agents
    ]
    text = "; ".join(parts)
    return (
        text[0].upper()
        + text[1:]
        + ": StreamSpace keeps it off its WebSocket until an admin approves it (approve_agents), so it cannot"
        " serve sessions"
    )


def _replacement_check(
    api: Any, hit: Dict[str, Any], prefix: str, settings: Any, secrets: Any, region: str = None
):
    """A check for `wait_until`: have the agents a restart/kill/scale hit come back, by identity?

    Per-pod ids (`<prefix>-<pod>`): as many *new* ids (not known to the control plane at the action) with
    the prefix, approved and online, as pods were hit. Fixed ids: the same id online, once every hit pod is
    gone, with a `lastHeartbeat` later than the one it had at the hit (both control-plane clock) and no
    older than the first pod not hit (a replacement, or an HA standby that took the Lease over).
    """
    from chaosstream.clients.kube import Cluster

    known = set(hit["known_ids"]) | set(hit["agent_ids"])
    per_pod = hit["per_pod"] or not hit["agent_ids"]
    # per-pod ids: one new agent per hit pod; fixed ids: each distinct id back (HA replicas share one)
    wanted = max(1, len(hit["pods"])) if per_pod else len(set(hit["agent_ids"]))
    first_seen: Dict[str, Any] = {}

    def check():
        agents = api.list_agents()
        state: Dict[str, Any] = {"agents": agents, "pending": []}
        if per_pod:
            pfx = prefix or _common_prefix(hit)
            new = [a for a in agents if str(a.get("agentId")) not in known and _in_cluster(a, pfx, region)]
            state["pending"] = [a for a in new if a.get("approvalStatus") == "pending"]
            ready = [a for a in new if a.get("approvalStatus") != "pending" and a.get("status") == "online"]
        else:
            pods = (
                Cluster(secrets, settings.kube_timeout)
                .core.list_namespaced_pod(settings.namespace, label_selector=settings.agent_selector)
                .items
            )
            alive_hit = [p for p in pods if p.metadata.name in hit["pods"]]  # gone, not just terminating
            fresh = [p.metadata.creation_timestamp for p in pods if p.metadata.name not in hit["pods"]]
            ready = []
            for a in agents:
                if a.get("agentId") not in hit["agent_ids"] or alive_hit or not fresh:
                    continue
                # heard from after the hit (both control-plane clock) and not before a replacement existed
                before = parse_time((hit.get("beats") or {}).get(a.get("agentId")))
                since = max([min(fresh)] + ([before] if before else []))
                beat = parse_time(a.get("lastHeartbeat"))
                fresher = beat is not None and (beat > since if before and since == before else beat >= since)
                if a.get("status") == "online" and fresher:
                    ready.append(a)
        for a in ready:
            first_seen.setdefault(str(a.get("agentId")), a)
        state["ready"] = list(first_seen.values())
        return len(first_seen) >= wanted, state

    return check


def _common_prefix(hit: Dict[str, Any]) -> str:
    """The id prefix of per-pod ids (`<prefix>-<pod>` minus the pod name)."""
    for agent_id, pod in zip(hit["agent_ids"], hit["pods"], strict=False):
        if agent_id.endswith("-" + pod):
            return agent_id[: -len(pod)]
    return ""


def wait_for_agent_status(
    status: str = "online",
    agent_id: str = None,
    agent_id_prefix: str = None,
    timeout: float = 60.0,
    poll_interval: float = None,
    after_rollout: bool = False,
    region: str = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Wait until an agent reaches `status` (`online`, `offline`, `draining`); measure how long it took.

    Polls `GET /api/v1/admin/agents` every `poll_interval` seconds (default: configuration
    `streamspace_poll_interval`) and returns as soon as the condition holds. Which agent:

    * `agent_id` if given;
    * else the agents the run's last agent fault hit (`partition_agent`, `kill_agent_pod`, `restart_agent`,
      `scale_agents` remember them). After a restart, kill or scale-down, `online` means *reconnected*,
      recognised by identity: with per-pod ids (the chart's `<prefix>-<pod name>`) a new agent of a
      replacement pod, approved and online; with a fixed id the same id heard from (control-plane
      `lastHeartbeat`) after its replacement pod was created, once the hit pods are gone. `elapsed_s`
      is then from the action to that heartbeat (`clock` says which clocks);
    * else the newest agent whose id starts with `agent_id_prefix` (or any agent in `status`). `offline`
      with neither an id nor a fault of this run is refused: every past pod leaves an offline row, so
      "any offline agent" would read ~0 s.

    A new agent awaiting approval fails the wait with a finding (it reads `online` on a real install
    while it cannot serve sessions). `after_rollout` is accepted for compatibility; identity replaces it.
    `agent_id_prefix` and `region` (the REGION the agents register with) scope the agents to one cluster:
    every cluster of the chart uses the same prefix, and a replacement or "the newest agent" must come from
    the cluster the run acts on (its kube context), never from another one dialling the same API.

    Returns `{"agentId", "status", "elapsed_s", "polls", "clock"}`; raises `ActivityFailed` on timeout, on
    401, when the API is unreachable and when a new agent awaits approval.

    Tolerance example: `{"type": "range", "range": [0, 30], "target": "elapsed_s"}`.
    """
    _check_status(status)
    timeout = seconds(timeout, "timeout")
    settings = resolve_settings(configuration, secrets)
    interval = poll_interval_of(settings, poll_interval)
    hit = None if agent_id else targeted_agents()
    if hit and hit.get("context"):
        from chaosstream.clients.kube import context_of

        if context_of(secrets) != hit["context"]:
            raise ActivityFailed(
                f"The agents this run hit are in kube context {hit['context']!r} but this wait reads "
                f"{context_of(secrets)!r}: give it the same KUBERNETES_CONTEXT (environment or the kubernetes "
                "secrets scope), or name the agent with 'agent_id'."
            )
    if not agent_id and hit is None and status == "offline":
        raise ActivityFailed(
            f"Say which agent should become {status}: pass 'agent_id', or run partition_agent, kill_agent_pod, "
            "restart_agent or scale_agents earlier in the same experiment."
        )
    reconnect = hit is not None and status == "online" and hit["action"] in REPLACING_ACTIONS
    started = utcnow()

    # One slow request must not outlast the wait's own timeout.
    with api_client(settings, timeout=min(settings.http_timeout, timeout)) as api:
        if reconnect:
            check = _replacement_check(api, hit, agent_id_prefix, settings, secrets, region or None)
        else:
            # distinct ids: HA replicas of one Deployment share one fixed id
            ids = [agent_id] if agent_id else sorted(set(hit["agent_ids"])) if hit else []

            def check():
                agents = api.list_agents()
                if ids:
                    candidates = [a for a in agents if a.get("agentId") in ids]
                    ok = len(candidates) == len(ids) and all(a.get("status") == status for a in candidates)
                    return ok, {"agents": agents, "ready": candidates, "pending": []}
                if agent_id_prefix:
                    agent = _pick(agents, None, agent_id_prefix, region)
                else:  # any agent in that status
                    agent = next(
                        (a for a in agents if a.get("status") == status and _in_cluster(a, None, region)), {}
                    )
                ok = bool(agent) and agent.get("status") == status
                return ok, {"agents": agents, "ready": [agent] if agent else [], "pending": []}

        def describe(last):
            if last and last.get("pending"):
                return _pending_finding(last["pending"]) + f" (waited {timeout:g}s)."
            if reconnect:
                who = f"the agent(s) of the pods replacing {', '.join(hit['pods'])}"
            elif agent_id or hit:
                who = "Agent " + ", ".join([agent_id] if agent_id else sorted(set(hit["agent_ids"])))
            else:
                who = "Agent " + (f"{agent_id_prefix}*" if agent_id_prefix else "(any)")
            seen = _describe_agents(last["agents"]) if last else "no answer"
            if reconnect:
                return f"No reconnection of {who} within {timeout:g}s ({seen})."
            return f"{who} did not reach status '{status}' within {timeout:g}s ({seen})."

        found, elapsed, polls = wait_until(
            check, timeout, interval, describe, agents_progress(agent_id or agent_id_prefix, status)
        )
    ready = found["ready"]
    agent = ready[-1] if ready else {}
    result: Dict[str, Any] = {
        "agentId": agent.get("agentId"),
        "status": agent.get("status"),
        "elapsed_s": elapsed,
        "polls": polls,
        "clock": "runner (from the start of this wait)",
    }
    if reconnect:
        beats = [parse_time(a.get("lastHeartbeat")) for a in ready]
        event = max((b for b in beats if b is not None), default=None)
        if event is not None:
            result["elapsed_s"] = round(max(0.0, (event - hit["at"]).total_seconds()), 3)
            result["reconnected_at"] = iso(event)
        result["agents"] = [a.get("agentId") for a in ready]
        result["action_at"] = iso(hit["at"])
        # From now on the run's agents are the ones that came back: later waits watch them by status.
        remember_agents(
            "reconnected",
            [],
            [str(a.get("agentId")) for a in ready],
            hit["per_pod"],
            hit["known_ids"],
            event or hit["at"],
            context=hit.get("context", ""),
        )
        result["clock"] = (
            "from the action (runner clock) to the agent's connect heartbeat (control-plane clock)"
        )
        result["waited_s"] = round((utcnow() - started).total_seconds(), 3)
    if status == "online" and (reconnect or hit is not None):
        # the agents the fault hit are back: streams are measured from here (the reconnect heartbeat when known)
        back = parse_time(result.get("reconnected_at")) if result.get("reconnected_at") else None
        # never before the hit (its heartbeat is the control plane's clock, the hit the runner's)
        at = max(back.timestamp(), hit["at"].timestamp()) if back and hit else time.time()
        remember_fault_end("agent online", at)
    return result


def wait_for_agents_online(
    min_count: int = 1,
    agent_id_prefix: str = None,
    region: str = None,
    timeout: float = 60.0,
    poll_interval: float = None,
    count_standbys: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Wait until at least `min_count` agents (with ids starting with `agent_id_prefix` and in `region`, if
    given: one cluster) are `online`; returns as soon as they are. Use it after healing one agent among several, where
    "an agent is online" would already hold.

    With `count_standbys=true` an online HA agent also counts its ready standbys while one of its pods holds
    its Lease (as in `agents_online`). Returns `{"online": n, "agents": [ids], "standbys": {id: n},
    "elapsed_s", "polls"}`; raises `ActivityFailed` on timeout.
    Tolerance example: `{"type": "probe", ... "func": "within", "arguments": {"target": "elapsed_s", "upper": 30}}`.
    """
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ActivityFailed(f"Argument 'min_count' must be a whole number ≥ 1, not {min_count!r}.")
    timeout = seconds(timeout, "timeout")
    settings = resolve_settings(configuration, secrets)
    interval = poll_interval_of(settings, poll_interval)
    with_standbys = flag(count_standbys, "count_standbys")
    # One slow request must not outlast the wait's own timeout.
    with api_client(settings, timeout=min(settings.http_timeout, timeout)) as api:

        def check():
            agents = [
                a
                for a in api.list_agents()
                if a.get("status") == "online" and _in_cluster(a, agent_id_prefix, region)
            ]
            standbys = _standbys(settings, secrets) if with_standbys else {}
            standbys = {k: v for k, v in standbys.items() if k in {a.get("agentId") for a in agents}}
            last = {"agents": agents, "standbys": standbys, "count": len(agents) + sum(standbys.values())}
            return last["count"] >= min_count, last

        def describe(last):
            last = last or {"count": 0, "standbys": {}}
            what = " (with HA standbys)" if with_standbys else ""
            return f"Only {last['count']} agent(s){what} online after {timeout:g}s, {min_count} needed."

        found, elapsed, polls = wait_until(
            check,
            timeout,
            interval,
            describe,
            agents_progress(f"{min_count} x {agent_id_prefix or 'any'}", "online"),
        )
    remember_fault_end("agents online", time.time())
    return {
        "online": found["count"],
        "agents": sorted(a.get("agentId") for a in found["agents"]),
        "standbys": found["standbys"],
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
    scope: str = "run",
    region: str = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Sessions per agent among online agents (default states: running, hibernated, pending — the ones
    StreamSpace's selector counts), and the max−min spread.

    By default (`scope: run`) only this run's sessions count, over the online agents that hold one of
    them or that this run's faults hit: other tenants' sessions and agents never move the spread. Before
    the run created any session it holds with `spread: 0`. `scope: all` counts every session on every
    online agent. `region` keeps the agents of one cluster (sessions another cluster took meanwhile do not
    unbalance this one).

    Returns `{"per_agent": {agentId: n}, "spread": int, "agents": int, "sessions": int, "unassigned": int}`.

    Tolerance example: `{"type": "range", "range": [0, 2], "target": "spread"}` (load balanced within ±2).
    """
    from chaosstream.selection import check_scope, run_agent_ids, run_sessions

    if states is not None and (
        not isinstance(states, list) or not all(isinstance(s, str) and s for s in states)
    ):
        raise ActivityFailed(
            f"Argument 'states' must be a list of session states such as [\"running\"], not {states!r}."
        )
    check_scope(scope)
    states = list(states or ["running", "hibernated", "pending"])
    settings = resolve_settings(configuration, secrets)
    prefix = (agent_id_prefix or "") + "%"
    if scope == "run":
        mine = run_sessions()
        counts = query(
            settings,
            "SELECT agent_id, count(*) AS n FROM sessions WHERE id = ANY(%s) AND state = ANY(%s) GROUP BY agent_id",
            (mine, states),
        )
        involved = sorted({r["agent_id"] for r in counts if r["agent_id"]} | set(run_agent_ids()))
        agents = query(
            settings,
            "SELECT agent_id FROM agents WHERE status = 'online' AND agent_id LIKE %s AND agent_id = ANY(%s)"
            " AND (%s::text IS NULL OR region = %s) ORDER BY agent_id",
            (prefix, involved, region or None, region or None),
        )
    else:
        agents = query(
            settings,
            "SELECT agent_id FROM agents WHERE status = 'online' AND agent_id LIKE %s"
            " AND (%s::text IS NULL OR region = %s) ORDER BY agent_id",
            (prefix, region or None, region or None),
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
