"""Preflight: is the target ready for this experiment? (`chaosstream check [EXPERIMENT]`, or a control.)

One line per check, `ok` / `warn` / `fail`, each with what to do. Nothing is changed anywhere: the API is
read (health, login, the admin agent list), Kubernetes is asked through SelfSubjectAccessReview whether
every call the experiment will make is allowed, the namespace's Pod Security level is compared with the
partition method, the agent Deployment is read, PostgreSQL is queried in a read-only transaction.

As a control (`"module": "chaosstream.controls.preflight"`), `before_experiment_control` refuses to start
the run (InterruptExecution, so nothing is injected) when a check fails.
"""

import base64
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from chaoslib.exceptions import InterruptExecution

from chaosstream.journal.schema import PREFLIGHT_EXTENSION
from chaosstream.settings import redact, resolve_settings

__all__ = [
    "Check",
    "run_checks",
    "config_errors",
    "needed_access",
    "configure_control",
    "before_experiment_control",
    "after_experiment_control",
]

OK, WARN, FAIL = "ok", "warn", "fail"

Access = Tuple[str, str, str, str, str]  # verb, group, resource, subresource, name

_PODS = [("list", "", "pods", "", ""), ("get", "", "pods", "", "")]
_EXEC = [("get", "", "pods", "exec", ""), ("create", "", "pods", "exec", "")]
_POLICIES = [("create", "networking.k8s.io", "networkpolicies", "", ""), ("delete", "networking.k8s.io", "networkpolicies", "", ""), ("list", "networking.k8s.io", "networkpolicies", "", "")]  # fmt: skip
_LEASE = [("create", "coordination.k8s.io", "leases", "", "")] + [
    (verb, "coordination.k8s.io", "leases", "", "chaosstream-run-lock")
    for verb in ("get", "update", "delete")
]
# the run's session record (chaosstream.faults.sessions): written before and as sessions are created,
# trimmed and deleted as they are terminated; heals list them
_RECORD = [("create", "", "configmaps", "", ""), ("patch", "", "configmaps", "", ""), ("delete", "", "configmaps", "", "")]  # fmt: skip
_RECORD_HEAL = [("list", "", "configmaps", "", ""), ("patch", "", "configmaps", "", ""), ("delete", "", "configmaps", "", "")]  # fmt: skip
# the Kubernetes calls of each activity (besides the pod lookups every one makes)
_FUNCS: Dict[str, List[Tuple[str, str, str, str, str]]] = {
    "create_sessions": _RECORD,
    "terminate_sessions": _RECORD[1:],
    "terminate_session": _RECORD[1:],
    "restart_agent": [
        ("get", "apps", "deployments", "", "@agent"),
        ("patch", "apps", "deployments", "", "@agent"),
    ],
    "scale_agents": [
        ("get", "apps", "deployments", "", "@agent"),
        ("patch", "apps", "deployments", "", "@agent"),
    ],
    "kill_agent_pod": [("delete", "", "pods", "", "")],
    "kill_session_pod": [("delete", "", "pods", "", "")],
    "partition_agent": [("patch", "", "pods", "", "")],
    "heal_agent_partition": [("patch", "", "pods", "", ""), *_EXEC],
    "heal_all": [
        ("patch", "", "pods", "", ""),
        *_EXEC,
        ("list", "apps", "deployments", "", ""),
        *_RECORD_HEAL,
    ],
    "wait_for_session_pods": [("get", "", "persistentvolumeclaims", "", "")],
    "agent_rollout_complete": [("get", "apps", "deployments", "", "@agent")],
    "wait_for_agent_status": [("get", "apps", "deployments", "", "@agent")],
}
_METHODS = {
    "ephemeral": [("patch", "", "pods", "ephemeralcontainers", ""), *_EXEC],
    "exec": _EXEC,
    "network-policy": _POLICIES,
}
# probes that read PostgreSQL (command queue, heartbeat ages)
_DB_FUNCS = {
    "queued_commands",
    "command_status",
    "commands_for_session",
    "wait_for_commands_drained",
    "lost_commands",
    "agent_heartbeat_age",
    "agent_for_session",
    "session_distribution",
    "no_sessions_placed_on",
    "sessions_assigned",
}


@dataclass
class Check:
    status: str  # ok | warn | fail
    name: str
    text: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.name}: {self.text}"


# -- the experiment ------------------------------------------------------------------------------------
def _activities(experiment: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    out: List[Mapping[str, Any]] = []
    ssh = experiment.get("steady-state-hypothesis") or {}
    for group in (ssh.get("probes") or [], experiment.get("method") or [], experiment.get("rollbacks") or []):
        out += [a for a in group if isinstance(a, Mapping)]
    return out


def config_errors(experiment: Mapping[str, Any]) -> List[str]:
    """One sentence per configuration value whose environment variable does not convert to its
    `env_var_type` (e.g. STREAMSPACE_PARTITION_DURATION=sixty for a float)."""
    errors = []
    for key, spec in (experiment.get("configuration") or {}).items():
        if not isinstance(spec, Mapping) or spec.get("type") != "env" or not spec.get("env_var_type"):
            continue
        raw = os.environ.get(str(spec.get("key")))
        if raw is None:
            continue
        kind = spec["env_var_type"]
        try:
            if kind == "int":
                int(raw)
            elif kind == "float":
                float(raw)
            elif kind == "bool":
                if raw.strip().lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError(raw)
            elif kind == "json":
                json.loads(raw)
        except ValueError:
            errors.append(
                f"{spec['key']}={raw!r} (configuration {key!r}) is not a valid {kind}: set it to "
                f"{'a whole number' if kind == 'int' else 'a number' if kind == 'float' else 'a ' + kind} "
                "or unset it to use the default."
            )
    return errors


def _resolved(experiment: Mapping[str, Any]) -> Dict[str, Any]:
    from chaoslib.configuration import load_configuration

    return dict(load_configuration(dict(experiment.get("configuration") or {})) or {})


def _argument(activity: Mapping[str, Any], name: str, config: Mapping[str, Any]) -> Any:
    value = ((activity.get("provider") or {}).get("arguments") or {}).get(name)
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        value = config.get(value[2:-1])
    return value


def needed_access(
    experiment: Optional[Mapping[str, Any]], agent_deployment: str, lock: bool = True
) -> Tuple[Set[Access], Set[str]]:
    """(Kubernetes calls the experiment makes, partition methods it uses)."""
    need: Set[Access] = set(_PODS)
    methods: Set[str] = set()
    if lock:
        need |= set(_LEASE)
    config = _resolved(experiment) if experiment else {}
    for activity in _activities(experiment or {}):
        func = (activity.get("provider") or {}).get("func")
        need |= set(_FUNCS.get(str(func), []))
        if func == "partition_agent":
            method = _argument(activity, "method", config) or "ephemeral"
            methods.add(str(method))
            need |= set(_METHODS.get(str(method), []))
    if not experiment:
        need |= set(_RECORD) | set(_RECORD_HEAL)
        for method in _METHODS:
            need |= set(_METHODS[method])
    return {(v, g, r, s, agent_deployment if n == "@agent" else n) for v, g, r, s, n in need}, methods


# activities that act on session pods/PVCs: they work in the session namespace (`streamspace_session_namespace`)
_SESSION_FUNCS = ("kill_session_pod", "wait_for_session_pods", "session_pods_running")


def session_access(experiment: Optional[Mapping[str, Any]]) -> Set[Access]:
    """The Kubernetes calls the experiment's session activities make in the session namespace."""
    need: Set[Access] = set()
    for activity in _activities(experiment or {}):
        func = str((activity.get("provider") or {}).get("func"))
        if func in _SESSION_FUNCS:
            need |= set(_PODS) | set(_FUNCS.get(func, []))
    return need


def _needs_db(experiment: Optional[Mapping[str, Any]]) -> bool:
    if not experiment:
        return False
    return any((a.get("provider") or {}).get("func") in _DB_FUNCS for a in _activities(experiment))


# -- checks --------------------------------------------------------------------------------------------
def _jwt_expiry(token: str) -> Optional[float]:
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        exp = json.loads(base64.urlsafe_b64decode(payload)).get("exp")
        return float(exp) if exp is not None else None
    except (IndexError, ValueError, TypeError):
        return None


def _api_checks(settings: Any, out: List[Check], run_seconds: float) -> None:
    from chaosstream.clients.streamspace import api_client

    with api_client(settings, timeout=min(settings.http_timeout, 10.0)) as api:
        try:
            status, _, ms = api.health()
        except Exception as exc:
            out.append(Check(FAIL, "api", f"{redact(settings.api_url)} unreachable ({_one(exc)}): fix STREAMSPACE_API_URL or the network path."))  # fmt: skip
            return
        out.append(
            Check(OK if status == 200 else WARN, "api", f"{redact(settings.api_url)}/health answered {status} in {ms:.0f} ms.")
        )  # fmt: skip
        try:
            token = api._token()
        except Exception as exc:
            out.append(Check(FAIL, "login", _one(exc)))
            return
        out.append(Check(OK, "login", f"as {settings.username or 'the configured token'}."))
        try:
            agents = api.list_agents()
            out.append(Check(OK, "admin role", f"the admin agent list is readable ({len(agents)} agent(s))."))
        except Exception as exc:
            out.append(Check(FAIL, "admin role", _one(exc)))
        expiry = _jwt_expiry(token)
        if expiry is None:
            out.append(Check(OK, "token lifetime", "not a JWT with an expiry (or it does not expire)."))
        else:
            left = expiry - time.time()
            if left < run_seconds:
                status = FAIL if not settings.username else WARN
                fix = (
                    "a fresh login happens on 401"
                    if settings.username
                    else "give a token that lives longer than the run"
                )
                out.append(Check(status, "token lifetime", f"the token expires in {left:.0f} s, before a {run_seconds:.0f} s run ends: {fix}."))  # fmt: skip
            else:
                out.append(Check(OK, "token lifetime", f"{left / 60:.0f} min left."))


def _one(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0] if text else type(exc).__name__).rstrip(".") + "."


def _kube_checks(
    settings: Any,
    experiment: Optional[Mapping[str, Any]],
    out: List[Check],
    lock: bool,
    kube: Optional[Mapping[str, Any]] = None,
) -> None:
    from chaosstream.clients.kube import Cluster, KubeError

    ns = settings.namespace
    try:
        cluster = Cluster(kube, timeout=10.0)
        cluster.core.list_namespaced_pod(ns, label_selector=settings.agent_selector, limit=1)
    except KubeError as exc:
        status = FAIL
        out.append(
            Check(status, "kubernetes", f"{_one(exc)} Check KUBECONFIG / the in-cluster ServiceAccount.")
        )
        return
    except Exception as exc:  # no kubeconfig at all
        out.append(Check(FAIL, "kubernetes", f"{_one(exc)} Set KUBECONFIG or CHAOSTOOLKIT_IN_POD=true."))
        return
    out.append(Check(OK, "kubernetes", f"reachable (context {cluster.context}); pods in {ns} are listable."))

    need, methods = needed_access(experiment, settings.agent_deployment, lock)
    checks = [(ns, access) for access in sorted(need)]
    sessions_ns = settings.session_namespace
    if sessions_ns != ns:
        checks += [(sessions_ns, access) for access in sorted(session_access(experiment))]
    denied: Optional[List[Tuple[str, str]]] = []
    for where, (verb, group, resource, sub, name) in checks:
        try:
            allowed = _allowed(cluster, where, (verb, group, resource, sub, name))
        except KubeError as exc:
            out.append(
                Check(
                    WARN, "permissions", f"SelfSubjectAccessReview unavailable ({_one(exc)}); not verified."
                )
            )
            denied = None
            break
        if not allowed:
            what = f"{resource}/{sub}" if sub else resource
            denied.append((where, f"{verb} {what}{'.' + group if group else ''}{' ' + name if name else ''}"))
    spaces = sorted({where for where, _ in checks})
    if denied:
        text = "; ".join(
            f"denied in {w}: {', '.join(t for x, t in denied if x == w)}"
            for w in spaces
            if any(x == w for x, _ in denied)
        )
        out.append(Check(FAIL, "permissions", f"{text}; grant them (deploy/kubernetes/rbac.yaml, in each namespace named).")
                   if len(spaces) > 1 else Check(FAIL, "permissions", f"{text}; grant them (deploy/kubernetes/rbac.yaml)."))  # fmt: skip
    elif denied is not None:
        out.append(Check(OK, "permissions", f"all {len(checks)} Kubernetes calls the experiment makes are allowed in {' and '.join(spaces)}."))  # fmt: skip

    # Pod Security Admission against the partition method
    net_admin = methods & {"ephemeral", "exec"}
    try:
        labels = cluster.core.read_namespace(ns).metadata.labels or {}
        level = labels.get("pod-security.kubernetes.io/enforce", "privileged")
        if net_admin and level in ("baseline", "restricted"):
            out.append(
                Check(FAIL, "pod security", f"namespace {ns} enforces '{level}', which refuses NET_ADMIN: partition method {'/'.join(sorted(net_admin))} cannot work; use network-policy or label the namespace privileged.")
            )  # fmt: skip
        else:
            out.append(Check(OK, "pod security", f"namespace {ns} enforces '{level}'" + (f"; {'/'.join(sorted(methods))} partitions are allowed." if methods else ".")))  # fmt: skip
    except KubeError as exc:
        status = WARN if net_admin else OK
        out.append(Check(status, "pod security", f"cannot read namespace {ns}'s labels ({exc.status}); "
                         + ("make sure it is not 'baseline' or 'restricted' (NET_ADMIN partitions)." if net_admin else "not needed.")))  # fmt: skip

    _quota_check(cluster, ns, experiment, out)
    _storage_check(cluster, experiment, out)

    # the agent Deployment
    try:
        dep = cluster.apps.read_namespaced_deployment(settings.agent_deployment, ns)
    except KubeError as exc:
        out.append(Check(FAIL, "agent deployment", f"{_one(exc)} Set STREAMSPACE_AGENT_DEPLOYMENT."))
        return
    out.append(
        Check(OK, "agent deployment", f"{ns}/{settings.agent_deployment}, {dep.spec.replicas} replica(s).")
    )
    match = (dep.spec.selector.match_labels or {}) if dep.spec.selector else {}
    pod_labels = (dep.spec.template.metadata.labels or {}) if dep.spec.template.metadata else {}
    wanted = dict(p.split("=", 1) for p in settings.agent_selector.split(",") if "=" in p)
    if all(pod_labels.get(k) == v for k, v in wanted.items()):
        out.append(
            Check(OK, "agent selector", f"{settings.agent_selector} matches its pods (selector {match}).")
        )
    else:
        out.append(Check(FAIL, "agent selector", f"{settings.agent_selector} does not match the Deployment's pod labels {pod_labels}: set STREAMSPACE_AGENT_SELECTOR."))  # fmt: skip
    env = {e.name: e for c in dep.spec.template.spec.containers for e in (c.env or [])}
    agent_id = env.get("AGENT_ID")
    if agent_id is None:
        out.append(Check(WARN, "agent id", "no AGENT_ID in the agent's env: the agent picks its own id."))
    elif agent_id.value and "$(POD_NAME)" in agent_id.value:
        out.append(Check(WARN, "agent id", f"AGENT_ID={agent_id.value}: a per-pod id, so each restart registers a new agent (awaiting approval); experiments find agents by prefix."))  # fmt: skip
    elif agent_id.value_from is not None:
        out.append(Check(WARN, "agent id", "AGENT_ID comes from the pod (valueFrom): per-pod ids, each restart is a new agent."))  # fmt: skip
    else:
        out.append(Check(OK, "agent id", f"AGENT_ID={agent_id.value} (fixed)."))
        ha = env.get("ENABLE_HA")
        if ha is not None and (ha.value or "").lower() == "true":
            _ha_check(cluster, ns, agent_id.value, dep.spec.replicas, out)
    url = env.get("CONTROL_PLANE_URL")
    if url is None or not (url.value or url.value_from):
        out.append(Check(FAIL, "control plane url", "the agent has no CONTROL_PLANE_URL: partitions cannot target its route."))  # fmt: skip
    else:
        out.append(
            Check(OK, "control plane url", f"{url.value or '(from ' + str(url.value_from.to_dict()) + ')'}.")
        )


def _allowed(cluster: Any, namespace: str, access: Access) -> bool:
    """SelfSubjectAccessReview of one call (raises KubeError when the review itself is unavailable)."""
    from kubernetes import client

    verb, group, resource, sub, name = access
    attrs = client.V1ResourceAttributes(
        verb=verb,
        group=group,
        resource=resource,
        subresource=sub or None,
        name=name or None,
        namespace=namespace,
    )
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attrs)
    )
    return bool(cluster.auth.create_self_subject_access_review(review).status.allowed)


def _ha_check(cluster: Any, ns: str, agent_id: str, replicas: Any, out: List[Check]) -> None:
    """HA agents (ENABLE_HA=true): kills, partitions and count_standbys find the leader from Lease
    streamspace-agent-<AGENT_ID> (agents/k8s-agent/internal/leaderelection/leader_election.go)."""
    from chaosstream.clients.kube import KubeError

    lease = f"streamspace-agent-{agent_id}"
    try:
        allowed = _allowed(cluster, ns, ("get", "coordination.k8s.io", "leases", "", lease))
    except KubeError:
        allowed = True  # the permissions line already says the review is unavailable
    if not allowed:
        out.append(Check(FAIL, "ha leader", f"ENABLE_HA=true ({replicas} replicas share {agent_id}), but get on Lease {ns}/{lease} is denied: faults could hit a standby; grant get on leases (deploy/kubernetes/rbac.yaml)."))  # fmt: skip
        return
    out.append(Check(OK, "ha leader", f"ENABLE_HA=true: the leader is read from Lease {ns}/{lease}."))


def _sessions_created(experiment: Optional[Mapping[str, Any]]) -> int:
    total = 0
    config = _resolved(experiment) if experiment else {}
    for activity in _activities(experiment or {}):
        if (activity.get("provider") or {}).get("func") == "create_sessions":
            try:
                total += int(_argument(activity, "count", config) or 1)
            except (TypeError, ValueError):
                total += 1
    return total


def _quota_check(cluster: Any, ns: str, experiment: Optional[Mapping[str, Any]], out: List[Check]) -> None:
    """Pod quota headroom for the session pods the experiment creates (each session is one pod)."""
    from chaosstream.clients.kube import KubeError

    wanted = _sessions_created(experiment)
    if not wanted:
        return
    try:
        quotas = cluster.core.list_namespaced_resource_quota(ns).items
    except KubeError as exc:
        out.append(Check(OK, "quota", f"not visible ({exc.status}): make sure {ns} has room for {wanted} session pod(s)."))  # fmt: skip
        return
    for quota in quotas:
        hard = (quota.status.hard if quota.status and quota.status.hard else None) or (quota.spec.hard or {})
        used = (quota.status.used if quota.status and quota.status.used else None) or {}
        if "pods" in hard:
            room = int(hard["pods"]) - int(used.get("pods", 0))
            if room < wanted:
                out.append(Check(FAIL, "quota", f"ResourceQuota {quota.metadata.name} leaves room for {room} pod(s); the experiment creates {wanted} session(s): raise it or free pods."))  # fmt: skip
                return
    out.append(Check(OK, "quota", f"room for the {wanted} session pod(s) the experiment creates."))


# agents/k8s-agent/agent_k8s_operations.go:543: `storageClass := "standard" // TODO: Make configurable`
AGENT_STORAGE_CLASS = "standard"


def _asks_persistent_homes(experiment: Optional[Mapping[str, Any]]) -> bool:
    config = _resolved(experiment) if experiment else {}
    return any(
        (activity.get("provider") or {}).get("func") == "create_sessions"
        and _argument(activity, "persistent_home", config) is True
        for activity in _activities(experiment or {})
    )


def _storage_check(cluster: Any, experiment: Optional[Mapping[str, Any]], out: List[Check]) -> None:
    """Persistent homes need the StorageClass the agent hard-codes; without it their PVCs stay Pending."""
    from chaosstream.clients.kube import KubeError

    if not _asks_persistent_homes(experiment):
        return
    try:
        cluster.storage.read_storage_class(AGENT_STORAGE_CLASS)
    except KubeError as exc:
        if exc.status == 404:
            try:
                names = sorted(c.metadata.name for c in cluster.storage.list_storage_class().items)
            except KubeError:
                names = []
            have = f" (it has: {', '.join(names)})" if names else ""
            out.append(Check(FAIL, "storage class", f"the experiment asks persistent homes, and StreamSpace's agent puts them on StorageClass '{AGENT_STORAGE_CLASS}' (hard-coded), which this cluster lacks{have}: their PVCs would stay Pending. Set STREAMSPACE_SESSION_PERSISTENT_HOME=false, or create a StorageClass named '{AGENT_STORAGE_CLASS}'."))  # fmt: skip
        else:
            out.append(Check(WARN, "storage class", f"cannot read StorageClass '{AGENT_STORAGE_CLASS}' ({exc.status}); persistent homes need it."))  # fmt: skip
        return
    out.append(Check(OK, "storage class", f"'{AGENT_STORAGE_CLASS}' exists for the persistent homes the experiment asks."))  # fmt: skip


def _db_checks(settings: Any, experiment: Optional[Mapping[str, Any]], out: List[Check]) -> None:
    needed = _needs_db(experiment)
    if not settings.db_dsn:
        if needed:
            out.append(Check(FAIL, "database", "the experiment reads PostgreSQL but no DSN is set: set STREAMSPACE_DB_DSN (a read-only role)."))  # fmt: skip
        else:
            out.append(Check(OK, "database", "not used by this experiment."))
        return
    from chaosstream.clients.database import query

    try:
        rows = query(settings, "SELECT current_setting('TimeZone') AS tz, current_user AS who, "
                     "has_table_privilege(current_user, 'agents', 'INSERT') AS can_write")  # fmt: skip
    except Exception as exc:
        out.append(Check(FAIL if needed else WARN, "database", _one(exc)))
        return
    row = rows[0] if rows else {}
    out.append(Check(OK, "database", f"reachable as {row.get('who')} (read-only transactions)."))
    if row.get("can_write"):
        out.append(Check(WARN, "database role", f"{row.get('who')} may INSERT into agents: use a read-only role for chaos runs."))  # fmt: skip
    tz = str(row.get("tz"))
    if tz.upper() in ("UTC", "ETC/UTC", "GMT", "ZULU", "UCT"):
        out.append(Check(OK, "database timezone", f"{tz}, as the API's timestamps."))
    else:
        out.append(Check(WARN, "database timezone", f"{tz}: naive timestamps would be off by the UTC offset; set the role's TimeZone to UTC."))  # fmt: skip


def run_checks(
    experiment: Optional[Mapping[str, Any]] = None,
    configuration: Optional[Mapping[str, Any]] = None,
    secrets: Optional[Mapping[str, Any]] = None,
    lock: bool = True,
    kube: Optional[Mapping[str, Any]] = None,
) -> List[Check]:
    """Every preflight check; `kube` holds KUBECONFIG / KUBERNETES_CONTEXT when the run's cluster is not
    the environment's (the experiment's `kubernetes` secrets scope, or `chaosstream check --context`)."""
    out: List[Check] = []
    if experiment is not None:
        errors = config_errors(experiment)
        if errors:
            return [Check(FAIL, "configuration", e) for e in errors]
        try:
            configuration = {**_resolved(experiment), **(configuration or {})}
        except Exception as exc:
            return [Check(FAIL, "configuration", _one(exc))]
        out.append(Check(OK, "configuration", f"{len(configuration)} value(s) resolved."))
    try:
        settings = resolve_settings(configuration, secrets)
    except Exception as exc:
        return out + [Check(FAIL, "settings", _one(exc))]
    run_seconds = float((configuration or {}).get("partition_duration") or 0) + 300.0
    _api_checks(settings, out, run_seconds)
    _kube_checks(settings, experiment, out, lock, kube)
    _db_checks(settings, experiment, out)
    return out


_STATE: Dict[str, Any] = {}


def configure_control(**_: Any) -> None:
    """Reset the per-run state."""
    _STATE.clear()


def before_experiment_control(
    context: Mapping[str, Any], configuration: Any = None, secrets: Any = None, **_: Any
) -> None:
    """Refuse to start the run (nothing injected) when a preflight check fails; the refusal lands in the
    journal (extension chaosstream-preflight) and `chaosstream verdict` reads it as 6."""
    from chaosstream.clients.kube import kube_secrets

    scoped = (secrets or {}).get("streamspace") if isinstance(secrets, Mapping) else None
    checks = run_checks(context, configuration, scoped, kube=kube_secrets(secrets))
    _STATE["checks"] = [c.line() for c in checks]
    failed = [c for c in checks if c.status == FAIL]
    if failed:
        _STATE["refused"] = "chaosstream preflight failed: " + " | ".join(
            f"{c.name}: {c.text}" for c in failed
        )
        raise InterruptExecution(_STATE["refused"])


def after_experiment_control(context: Any, state: Any, **_: Any) -> None:
    """Record the checks (and a refusal) in the journal."""
    if not isinstance(state, dict) or not _STATE:
        return
    extensions = state.get("extensions")
    if not isinstance(extensions, list):
        extensions = state["extensions"] = []
    extensions.append({"name": PREFLIGHT_EXTENSION, **_STATE})
