"""Partition an agent from the control plane, and heal it.

Three methods (design §2):
- `ephemeral` (default, works on a stock deployment): an ephemeral container with NET_ADMIN shares the
  agent pod's network namespace and inserts iptables DROP rules for the API ports; it removes them
  itself after `duration` (its own dead-man timer), so the partition ends even if the runner dies.
- `exec`: the same rules through `kubectl exec` into the agent container (needs iptables and NET_ADMIN
  there, which the stock agent image lacks); a background `sleep` in the pod heals after `duration`.
- `network-policy`: a NetworkPolicy that allows every egress port but the API's (needs a policy-enforcing
  CNI). It carries `chaosstream.io/expires-at`; a detached reaper deletes it after `duration`, and
  `heal_all(expired_only=True)` (the CronJob reaper) does too.
Every rule, policy and pod annotation is tagged `chaosstream`, so `heal_agent_partition` and
`heal_all` can revert leftovers without the action's output.
"""

import datetime
import json
import math
import secrets as pysecrets
from typing import Any, Dict, List
from urllib.parse import urlsplit

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosstream.kube import check_namespace, core_api, exec_in_pod, k8s_error, networking_api
from chaosstream.settings import Settings, resolve_settings
from chaosstream.timeutil import iso, parse_time, utcnow

__all__ = ["partition_agent", "heal_agent_partition", "heal_all"]

METHODS = ("ephemeral", "exec", "network-policy")
MANAGED_BY = {"app.kubernetes.io/managed-by": "chaosstream"}
ANNOTATION_PREFIX = "chaosstream.io/partition-"
EXPIRES_ANNOTATION = "chaosstream.io/expires-at"
RULE_TAG = "chaosstream-"
DEFAULT_IMAGE = "nicolaka/netshoot:v0.13"


# -- scripts that run inside the pod's network namespace -----------------------------------------------------
def _inject_script(ports: List[int], tag: str) -> str:
    return " && ".join(
        f"iptables -I OUTPUT -p tcp --dport {p} -m comment --comment {tag} -j DROP" for p in ports
    )


def _heal_script(tag: str) -> str:
    """Remove every OUTPUT rule whose comment starts with `tag` and stop the partition's own timer
    process (its pid file is /tmp/<tag>*.pid, in the container that runs it); idempotent."""
    return (
        f"iptables -S OUTPUT | grep -- '--comment {tag}' | sed 's/^-A /-D /' | "
        "while read -r rule; do iptables $rule; done; "
        f'for f in /tmp/{tag}*.pid; do [ -f "$f" ] || continue; p=$(cat "$f"); rm -f "$f"; '
        'pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done; true'
    )


def _timer_script(tag: str, seconds: int) -> str:
    """A dead-man timer: heals after `seconds`; `_heal_script` stops it early through its pid file."""
    return f"echo $$ > /tmp/{tag}.pid; sleep {seconds}; {_heal_script(tag)}"


def _quote(text: str) -> str:
    """Single-quote for sh."""
    return "'" + text.replace("'", "'\\''") + "'"


def _exec_script(ports: List[int], tag: str, seconds: int) -> str:
    """Inject, then leave a detached dead-man timer in the container."""
    return f"{_inject_script(ports, tag)} && (nohup sh -c {_quote(_timer_script(tag, seconds))} >/dev/null 2>&1 &)"


def _ephemeral_script(ports: List[int], tag: str, seconds: int) -> str:
    """The ephemeral container's main process is the timer: healed early (SIGTERM or the heal's kill), it
    removes the rules and exits, and with it the container."""
    heal = _heal_script(tag)
    return (
        f"{_inject_script(ports, tag)} || exit 1; echo $$ > /tmp/{tag}.pid; "
        f"trap {_quote(heal + '; kill $s 2>/dev/null; exit 0')} TERM INT; "
        f"sleep {seconds} & s=$!; wait $s; {heal}"
    )


def _api_ports(settings: Settings) -> List[int]:
    parts = urlsplit(settings.api_url)
    return [parts.port or (443 if parts.scheme == "https" else 80)]


def _check_ports(ports: List[int]) -> List[int]:
    if not isinstance(ports, list) or not ports:
        raise ActivityFailed("Argument 'ports' must be a non-empty list of TCP ports, e.g. [8000].")
    clean = []
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ActivityFailed(f"Argument 'ports' must hold TCP port numbers 1–65535, not {port!r}.")
        clean.append(port)
    return sorted(set(clean))


def _agent_env_id(pod: Any) -> str:
    for container in pod.spec.containers or []:
        for env in container.env or []:
            if env.name == "AGENT_ID" and env.value:
                return env.value
    return ""


def _target_pods(
    settings: Settings, secrets: Secrets, ns: str, agent_id: str, selector: str, max_pods: int
) -> List[Any]:
    try:
        pods = core_api(secrets).list_namespaced_pod(ns, label_selector=selector).items
    except Exception as exc:
        raise k8s_error(exc, f"pods '{selector}' in {ns}") from None
    pods = [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None and (p.status and p.status.phase == "Running")
    ]
    if agent_id:
        # The chart names agents <prefix>-<pod name>; static manifests set AGENT_ID in the env.
        pods = [p for p in pods if _agent_env_id(p) == agent_id or agent_id.endswith("-" + p.metadata.name)]
        if not pods:
            raise ActivityFailed(
                f"No running agent pod serves agent {agent_id!r} in {ns} (selector '{selector}'): check 'agent_id'."
            )
    if not pods:
        raise ActivityFailed(
            f"No running agent pod matches '{selector}' in namespace {ns}: check 'label_selector'."
        )
    if len(pods) > max_pods:
        pods = pods[:max_pods]
    return pods


def _allow_all_but(ports: List[int]) -> List[Dict[str, Any]]:
    """Egress port ranges that cover every TCP port except `ports` (NetworkPolicy is an allow-list)."""
    ranges, start = [], 1
    for port in ports:
        if port > start:
            ranges.append({"protocol": "TCP", "port": start, "endPort": port - 1})
        start = port + 1
    if start <= 65535:
        ranges.append({"protocol": "TCP", "port": start, "endPort": 65535})
    ranges.append({"protocol": "UDP", "port": 1, "endPort": 65535})
    return ranges


def _record(secrets: Secrets, ns: str, pod: str, pid: str, record: Dict[str, Any]) -> None:
    body = {"metadata": {"annotations": {ANNOTATION_PREFIX + pid: json.dumps(record, sort_keys=True)}}}
    try:
        core_api(secrets).patch_namespaced_pod(pod, ns, body)
    except Exception as exc:
        raise k8s_error(exc, f"pod {ns}/{pod}") from None


def _start_reaper(ns: str, name: str, pid: str, expires_epoch: float) -> None:
    """A detached process that deletes the policy at expiry even if `chaos run` is killed."""
    from chaosstream.reaper import spawn_reaper

    spawn_reaper(["networkpolicy", ns, name, pid, str(expires_epoch)])


def partition_agent(
    method: str = "ephemeral",
    duration: float = 60.0,
    ports: List[int] = None,
    agent_id: str = None,
    label_selector: str = None,
    namespace: str = None,
    max_pods: int = 1,
    image: str = DEFAULT_IMAGE,
    max_duration: float = 3600.0,
    start_timeout: float = 120.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Cut an agent off from the StreamSpace API for `duration` seconds (TCP `ports`, default the port of
    `streamspace_api_url`), by `method` `ephemeral` (default), `exec` or `network-policy`.

    The target is the pod serving `agent_id` (or the agent pods matching `label_selector`, default
    `streamspace_agent_selector`), at most `max_pods` (default 1), in the configured namespace only.
    For `ephemeral` it returns once the container runs (`start_timeout` bounds the image pull). The
    partition heals itself after `duration` even if the runner dies; `heal_agent_partition` (for
    rollbacks) and `heal_all` end it earlier.

    Returns `{"partition_id", "method", "pods", "ports", "duration", "expires_at"}`.
    """
    settings = resolve_settings(configuration, secrets)
    if method not in METHODS:
        raise ActivityFailed(f"Argument 'method' must be one of {', '.join(METHODS)}, not {method!r}.")
    for arg, value in (("start_timeout", start_timeout), ("max_duration", max_duration)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ActivityFailed(f"Argument '{arg}' must be a number of seconds > 0, not {value!r}.")
    if (
        isinstance(duration, bool)
        or not isinstance(duration, (int, float))
        or not 0 < duration <= max_duration
    ):
        raise ActivityFailed(
            f"Argument 'duration' must be between 0 and {max_duration:g} seconds (raise 'max_duration' to allow more), "
            f"not {duration!r}."
        )
    if isinstance(max_pods, bool) or not isinstance(max_pods, int) or max_pods < 1:
        raise ActivityFailed(f"Argument 'max_pods' must be a whole number ≥ 1, not {max_pods!r}.")
    if method == "ephemeral" and (not isinstance(image, str) or not image.strip()):
        raise ActivityFailed(
            f"Argument 'image' must name a container image with sh and iptables, not {image!r}."
        )
    if label_selector is not None and not isinstance(label_selector, str):
        raise ActivityFailed(
            f"Argument 'label_selector' must be a label selector string, not {label_selector!r}."
        )
    ns = check_namespace(namespace, settings.namespace)
    selector = settings.agent_selector if label_selector is None else label_selector.strip()
    if not selector:
        raise ActivityFailed(
            "Argument 'label_selector' must not be empty: it would select every pod in the namespace."
        )
    ports = _check_ports(ports if ports is not None else _api_ports(settings))
    pods = _target_pods(settings, secrets, ns, agent_id, selector, max_pods)

    pid = pysecrets.token_hex(4)
    tag = RULE_TAG + pid
    seconds = int(math.ceil(duration))
    expires = utcnow().timestamp() + seconds
    expires_at = iso(datetime.datetime.fromtimestamp(expires, tz=datetime.UTC))
    done: List[str] = []
    for pod in pods:
        name = pod.metadata.name
        record = {"method": method, "ports": ports, "expires_at": expires_at}
        if method == "exec":
            container = settings.agent_container
            record["container"] = container
            _record(
                secrets, ns, name, pid, record
            )  # before injecting: a rollback must know even if we die now
            script = _exec_script(ports, tag, seconds)
            code, out, err = exec_in_pod(secrets, ns, name, container, ["sh", "-c", script])
            if code != 0:
                _remove_record(secrets, ns, name, pid)
                raise ActivityFailed(
                    f"Partition by exec failed in {ns}/{name} container {container} (exit {code}: {(err or out).strip()[:200]}); "
                    "the stock agent image has no iptables and no NET_ADMIN: use method 'ephemeral'."
                )
        elif method == "ephemeral":
            container = f"chaosstream-partition-{pid}"
            record["container"] = container
            _record(secrets, ns, name, pid, record)
            script = _ephemeral_script(ports, tag, seconds)
            spec = {
                "name": container,
                "image": image,
                "command": ["sh", "-c", script],
                "targetContainerName": settings.agent_container,
                "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
            }
            existing = [
                c.to_dict() if hasattr(c, "to_dict") else c for c in (pod.spec.ephemeral_containers or [])
            ]
            body = {"spec": {"ephemeralContainers": [{"name": c["name"]} for c in existing] + [spec]}}
            try:
                core_api(secrets).patch_namespaced_pod_ephemeralcontainers(name, ns, body)
            except Exception as exc:
                _remove_record(secrets, ns, name, pid)
                raise k8s_error(exc, f"ephemeral container on pod {ns}/{name}") from None
            # The partition starts when the container runs (after an image pull on a real node): measure
            # detection from then, not from the API call.
            _wait_ephemeral_running(secrets, ns, name, container, start_timeout)
        else:
            policy_name = f"chaosstream-partition-{pid}-{len(done)}"
            record["policy"] = policy_name
            _record(secrets, ns, name, pid, record)
            labels = {k: v for k, v in (pod.metadata.labels or {}).items() if k != "pod-template-hash"}
            policy = {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {
                    "name": policy_name,
                    "namespace": ns,
                    "labels": dict(MANAGED_BY, **{"chaosstream.io/partition": pid}),
                    "annotations": {EXPIRES_ANNOTATION: expires_at, "chaosstream.io/target-pod": name},
                },
                "spec": {
                    "podSelector": {"matchLabels": labels},
                    "policyTypes": ["Egress"],
                    "egress": [{"ports": _allow_all_but(ports)}],
                },
            }
            try:
                networking_api(secrets).create_namespaced_network_policy(ns, policy)
            except Exception as exc:
                _remove_record(secrets, ns, name, pid)
                raise k8s_error(exc, f"NetworkPolicy {ns}/{policy_name}") from None
            _start_reaper(ns, policy_name, pid, expires)
        done.append(name)
    return {
        "partition_id": pid,
        "method": method,
        "pods": done,
        "ports": ports,
        "duration": seconds,
        "expires_at": expires_at,
    }


def _wait_ephemeral_running(secrets: Secrets, ns: str, pod: str, container: str, timeout: float) -> None:
    from chaosstream.polling import wait_until

    def check():
        try:
            current = core_api(secrets).read_namespaced_pod(pod, ns)
        except Exception as exc:
            raise k8s_error(exc, f"pod {ns}/{pod}") from None
        for status in current.status.ephemeral_container_statuses or []:
            if status.name == container and status.state is not None:
                if status.state.running is not None:
                    return True, "running"
                if status.state.terminated is not None:
                    ended = status.state.terminated
                    why = f": {ended.message.strip()}" if ended.message else ""
                    raise ActivityFailed(
                        f"The partition container {container} in {ns}/{pod} exited at once (exit {ended.exit_code}{why}); "
                        "check that its image has iptables and that NET_ADMIN is allowed in the namespace."
                    )
                if status.state.waiting is not None:
                    return False, status.state.waiting.reason or "waiting"
        return False, "not started"

    wait_until(
        check,
        timeout,
        0.05,
        lambda last: (
            f"The partition container {container} in {ns}/{pod} is not running after {timeout:g}s ({last})."
        ),
    )


def _remove_record(secrets: Secrets, ns: str, pod: str, pid: str) -> None:
    body = {"metadata": {"annotations": {ANNOTATION_PREFIX + pid: None}}}
    try:
        core_api(secrets).patch_namespaced_pod(pod, ns, body)
    except Exception as exc:
        if getattr(exc, "status", None) != 404:
            raise k8s_error(exc, f"pod {ns}/{pod}") from None


def _heal_rules(secrets: Secrets, ns: str, pod: str, container: str, tag: str) -> bool:
    """Run the heal script in `container`; True if our rules were still there (or we cannot tell)."""
    count = f"iptables -S OUTPUT | grep -c -- '--comment {tag}'; "  # prints 0 when none: one round trip
    _, out, _ = exec_in_pod(secrets, ns, pod, container, ["sh", "-c", count + _heal_script(tag)])
    first = (out or "").strip().splitlines()[:1]
    return not first or not first[0].isdigit() or int(first[0]) > 0


def _heal_pod(secrets: Secrets, ns: str, pod: Any, pid: str, record: Dict[str, Any]) -> str:
    """Revert one partition record on `pod` and drop the record. Returns what was reverted, or "" when
    the fault had already ended on its own (self-expired timer, exited container, reaped policy): then
    only the stale record is removed, so `chaosstream heal` does not report a fault that was not there."""
    name = pod.metadata.name
    method = record.get("method")
    tag = RULE_TAG + pid
    live = False
    if method == "exec":
        live = _heal_rules(secrets, ns, name, record.get("container") or "k8s-agent", tag)
    elif method == "ephemeral":
        statuses = {s.name: s for s in (pod.status.ephemeral_container_statuses or [])}
        status = statuses.get(record.get("container"))
        if status is not None and status.state is not None and status.state.running is not None:
            live = _heal_rules(secrets, ns, name, record["container"], tag)
    elif method == "network-policy" and record.get("policy"):
        live = _delete_policy(secrets, ns, record["policy"])
    _remove_record(secrets, ns, name, pid)
    return f"{method} partition {pid} on pod {ns}/{name}" if live else ""


def _delete_policy(secrets: Secrets, ns: str, name: str) -> bool:
    try:
        networking_api(secrets).delete_namespaced_network_policy(name, ns)
    except Exception as exc:
        if getattr(exc, "status", None) == 404:
            return False
        raise k8s_error(exc, f"NetworkPolicy {ns}/{name}") from None
    return True


def _heal(settings: Settings, secrets: Secrets, ns: str, partition_id: str, expired_only: bool) -> List[str]:
    healed: List[str] = []
    now = utcnow()
    try:
        pods = core_api(secrets).list_namespaced_pod(ns).items
    except Exception as exc:
        raise k8s_error(exc, f"pods in {ns}") from None
    for pod in pods:
        for key, raw in (pod.metadata.annotations or {}).items():
            if not key.startswith(ANNOTATION_PREFIX):
                continue
            pid = key[len(ANNOTATION_PREFIX) :]
            if partition_id and pid != partition_id:
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                record = {}
            expiry = parse_time(record.get("expires_at"))
            if expired_only and expiry is not None and expiry > now:
                continue
            if pod.metadata.deletion_timestamp is not None:
                continue  # its namespace and rules go away with it
            what = _heal_pod(secrets, ns, pod, pid, record)
            if what:
                healed.append(what)
    try:
        policies = (
            networking_api(secrets)
            .list_namespaced_network_policy(ns, label_selector="app.kubernetes.io/managed-by=chaosstream")
            .items
        )
    except Exception as exc:
        raise k8s_error(exc, f"NetworkPolicies in {ns}") from None
    for policy in policies:
        pid = (policy.metadata.labels or {}).get("chaosstream.io/partition", "")
        if partition_id and pid != partition_id:
            continue
        expiry = parse_time((policy.metadata.annotations or {}).get(EXPIRES_ANNOTATION))
        if expired_only and expiry is not None and expiry > now:
            continue
        if _delete_policy(secrets, ns, policy.metadata.name):
            healed.append(f"NetworkPolicy {ns}/{policy.metadata.name}")
    return healed


def heal_agent_partition(
    partition_id: str = None,
    namespace: str = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """End agent partitions made by `partition_agent`: the one with `partition_id`, or every one.

    Works from what the partition left in the cluster (pod annotations `chaosstream.io/partition-*`,
    rules tagged `chaosstream-<id>`, NetworkPolicies labelled `app.kubernetes.io/managed-by=chaosstream`),
    so it needs no output of the action and is safe to run twice. Use it in `rollbacks`.

    Returns `{"healed": [what was reverted]}`.
    """
    settings = resolve_settings(configuration, secrets)
    ns = check_namespace(namespace, settings.namespace)
    return {"healed": _heal(settings, secrets, ns, partition_id, expired_only=False)}


def heal_all(
    namespace: str = None,
    expired_only: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Remove every leftover chaosstream fault in the namespace: partitions of all methods and agent
    Deployments still scaled down by `scale_agents` (restored to the recorded replica count). With
    `expired_only=true` only faults past their `expires-at` are removed (the scheduled reaper's mode).

    Returns `{"healed": [what was reverted]}`.
    """
    from chaosstream.actions.agents import PREVIOUS_REPLICAS_ANNOTATION, scale_agents
    from chaosstream.kube import apps_api

    settings = resolve_settings(configuration, secrets)
    ns = check_namespace(namespace, settings.namespace)
    healed = _heal(settings, secrets, ns, None, expired_only)
    if not expired_only:
        try:
            deployments = apps_api(secrets).list_namespaced_deployment(ns).items
        except Exception as exc:
            raise k8s_error(exc, f"Deployments in {ns}") from None
        for dep in deployments:
            if PREVIOUS_REPLICAS_ANNOTATION in (dep.metadata.annotations or {}):
                result = scale_agents(
                    -1,
                    namespace=ns,
                    deployment=dep.metadata.name,
                    configuration=configuration,
                    secrets=secrets,
                )
                healed.append(f"Deployment {ns}/{dep.metadata.name} scaled back to {result['replicas']}")
    return {"healed": healed}
