"""Which sessions an activity acts on: explicit ids, a tag, or the ones this run created.

Chaos Toolkit does not pass one activity's output to the next, but all activities of a `chaos run`
share one process: `create_sessions` records the names it created here, so later probes can check
"the sessions we created" without the experiment knowing their generated names.

The run's start (when chaosstream is first imported in the `chaos run` process: chaoslib imports an
activity's module when it validates the experiment) bounds the default scope of the probes that read
shared tables: on a busy install other tenants' sessions and commands — `sent`/`ack`/`failed` rows are
never pruned — must neither fail nor pass a hypothesis.
"""

import datetime as dt
import threading
from typing import Any, Dict, List, Optional

from chaoslib.exceptions import ActivityFailed

from chaosstream.clients.database import query
from chaosstream.settings import Settings
from chaosstream.timeutil import utcnow

__all__ = [
    "remember_sessions",
    "resolve_session_ids",
    "created_sessions",
    "remember_killed",
    "killed_pods",
    "remember_agents",
    "targeted_agents",
    "forget_agents",
    "run_started",
    "start_run",
    "run_sessions",
    "run_agent_ids",
    "RUN_SCOPES",
    "check_scope",
    "remember_fault_start",
    "remember_fault_end",
    "fault_end",
]

RUN_SCOPES = ("run", "all")

_LOCK = threading.Lock()
_CREATED: Dict[str, List[str]] = {}
_KILLED: Dict[str, Dict[str, Any]] = {}
_TARGETED: List[Dict[str, Any]] = []
_RUN_STARTED: List[dt.datetime] = [utcnow()]
_FAULT_ENDS: List[Dict[str, Any]] = []
_FAULT_STARTS: List[float] = []


def run_started() -> dt.datetime:
    """When this run started (runner clock, UTC, aware)."""
    with _LOCK:
        return _RUN_STARTED[0]


def start_run(at: Optional[dt.datetime] = None) -> dt.datetime:
    """Start a new run now (or at `at`): forget what earlier runs in this process created and hit."""
    with _LOCK:
        _RUN_STARTED[0] = at or utcnow()
        _CREATED.clear()
        _KILLED.clear()
        _TARGETED.clear()
        _FAULT_ENDS.clear()
        _FAULT_STARTS.clear()
        return _RUN_STARTED[0]


def run_sessions() -> List[str]:
    """Every session this run created, whatever the group."""
    with _LOCK:
        seen: Dict[str, None] = {}
        for names in _CREATED.values():
            seen.update(dict.fromkeys(names))
        return list(seen)


def run_agent_ids() -> List[str]:
    """The agent ids this run's faults hit."""
    with _LOCK:
        return list(dict.fromkeys(a for record in _TARGETED for a in record["agent_ids"]))


def check_scope(scope: Any) -> str:
    if scope not in RUN_SCOPES:
        raise ActivityFailed(
            f"Argument 'scope' must be 'run' (what this run created or hit) or 'all', not {scope!r}."
        )
    return scope


def remember_agents(
    action: str,
    pods: List[str],
    agent_ids: List[str],
    per_pod: bool,
    known_ids: List[str],
    at: Any,
    beats: Optional[Dict[str, str]] = None,
    context: str = "",
) -> Dict[str, Any]:
    """What an agent fault hit: the `action` (restart, kill, partition, scale), the `pods` and the agent
    ids they served, whether those ids are per pod (`<prefix>-<pod name>`), the agent ids the control plane
    knew at that moment (so a replacement is recognised as a *new* id), their `lastHeartbeat` then
    (control-plane clock), when (runner clock, UTC) and the kube `context` of the cluster they are in."""
    if action not in ("reconnected", "scale_agents_restore"):
        remember_fault_start()
    record = {
        "context": context,
        "action": action,
        "pods": list(pods),
        "agent_ids": [a for a in agent_ids if a],
        "per_pod": bool(per_pod),
        "known_ids": list(known_ids),
        "at": at,
        "beats": dict(beats or {}),
    }
    with _LOCK:
        _TARGETED.append(record)
    return record


def targeted_agents() -> Optional[Dict[str, Any]]:
    """The latest agent fault of this run, or None."""
    with _LOCK:
        return dict(_TARGETED[-1]) if _TARGETED else None


def forget_agents() -> None:
    with _LOCK:
        _TARGETED.clear()


def remember_killed(session_id: str, pod: str, claims: Dict[str, str]) -> None:
    """What `kill_session_pod` removed: the pod and its PVCs (name -> uid), for the recovery check."""
    remember_fault_start()
    with _LOCK:
        _KILLED[session_id] = {"pod": pod, "claims": dict(claims)}


def killed_pods() -> Dict[str, Dict[str, Any]]:
    with _LOCK:
        return {k: dict(v) for k, v in _KILLED.items()}


def remember_sessions(group: str, names: List[str]) -> None:
    with _LOCK:
        _CREATED.setdefault(group, []).extend(n for n in names if n not in _CREATED.get(group, []))


def created_sessions(group: str = "default") -> List[str]:
    with _LOCK:
        return list(_CREATED.get(group, []))


def resolve_session_ids(
    settings: Settings,
    session_ids: Optional[List[str]],
    tag: Optional[str],
    group: str = "default",
    required: bool = True,
) -> List[str]:
    """Explicit ids win; else sessions carrying `tag` (from the DB); else those this run created.

    With `required=False` "nothing created yet" (or no session carrying `tag`) gives an empty list: a
    steady-state probe that runs before the method (when the run has created nothing) then holds
    vacuously. With `required=True` an empty selection raises: a wait or a kill on nothing is a mistake.
    """
    if session_ids:
        if not isinstance(session_ids, list) or not all(isinstance(s, str) and s for s in session_ids):
            raise ActivityFailed("Argument 'session_ids' must be a list of session names.")
        return list(session_ids)
    if tag:
        if not isinstance(tag, str):
            raise ActivityFailed(f"Argument 'tag' must be a string, not {tag!r}.")
        rows = query(
            settings,
            "SELECT id FROM sessions WHERE %s = ANY(tags) AND state <> 'deleted' ORDER BY created_at",
            (tag,),
        )
        if not rows and required:
            raise ActivityFailed(
                f"No session carries the tag {tag!r}: check 'tag' (sessions are tagged at creation)."
            )
        return [r["id"] for r in rows]
    names = created_sessions(group)
    if not names and not required:
        return []
    if not names:
        raise ActivityFailed(
            "No sessions to check: pass 'session_ids' or 'tag', or run create_sessions earlier in the same experiment."
        )
    return names


def remember_fault_start(at: Optional[float] = None) -> None:
    """A fault of this run starts now (or at epoch `at`): agent faults, session pod kills, API pod restarts."""
    import time

    with _LOCK:
        _FAULT_STARTS.append(float(at if at is not None else time.time()))


def remember_fault_end(what: str, at: float, removed: bool = False) -> None:
    """The platform is back from the run's fault at epoch `at`: an agent reconnected, a session's new pod
    is ready, a replaced API pod is ready — or, with `removed`, the fault itself was taken away (a heal or
    restore was applied; the platform may need longer to come back)."""
    with _LOCK:
        _FAULT_ENDS.append({"what": what, "at": float(at), "removed": bool(removed)})


def fault_started() -> Optional[float]:
    """When the run's latest fault started (epoch), or None when the run injected none."""
    with _LOCK:
        return max(_FAULT_STARTS, default=None)


def fault_end() -> Optional[Dict[str, Any]]:
    """When the run's latest fault ended (`{"what", "at"}`): the first time the platform was seen back
    after the fault's start (a later wait seeing the same agents online is not a new end), else the
    first heal or restore after it; None when nothing ended."""
    with _LOCK:
        since = max(_FAULT_STARTS, default=None)
        ends = [e for e in _FAULT_ENDS if since is None or e["at"] >= since]
        back = [e for e in ends if not e["removed"]] or ends
        if not back:
            return None
        pick = min(back, key=lambda e: e["at"]) if since is not None else max(back, key=lambda e: e["at"])
        return {"what": pick["what"], "at": pick["at"]}
