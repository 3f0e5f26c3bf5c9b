"""Partition an agent pod from the control plane: inject, verify, record, undo.

Every method drops exactly the agent's route (see `faults.route`: the Service's ClusterIP:port and its
endpoints' address:targetPort, IPv4 and IPv6, both directions), never a bare port:
- `ephemeral` (works on a stock deployment): an ephemeral container with NET_ADMIN shares the agent
  pod's network namespace and inserts iptables DROP rules; its main process is the dead-man timer, and
  its script carries an absolute deadline, so a late start (slow image pull) changes nothing.
- `exec`: the same rules through pods/exec into the agent container (needs iptables and NET_ADMIN
  there, which the stock agent image lacks); a detached `sleep` in the pod heals at the deadline.
- `network-policy`: a unique label is patched on the target pod alone and a NetworkPolicy selecting
  that label allows all egress except to the route's addresses (ipBlock `except`, no `endPort`); it
  carries `chaosstream.io/expires-at` and a detached reaper deletes it.
Every injection is verified before the action returns: for iptables methods a TCP connect from the pod's
network namespace to each route destination must fail while the kube-apiserver stays reachable; for
NetworkPolicies the agent's heartbeats must stop reaching the API. Otherwise the fault is undone and the
action fails with one sentence naming the likely cause.
The record (a pod annotation) is written before anything is injected: a rollback must know even if
the runner dies in between.
"""

import datetime
import ipaddress
import json
import math
import secrets as pysecrets
import time
from typing import Any, Callable, Dict, List, Optional

from chaoslib.exceptions import ActivityFailed

from chaosstream.clients.kube import Cluster, KubeError
from chaosstream.faults import scripts
from chaosstream.faults.records import (
    EXPIRES_ANNOTATION,
    MANAGED_BY,
    OWNER_ANNOTATION,
    PARTITION_ANNOTATION_PREFIX,
    PARTITION_LABEL,
    RUN_ID,
    TARGET_LABEL,
    Fault,
)
from chaosstream.polling import wait_until
from chaosstream.timeutil import iso, utcnow

__all__ = ["METHODS", "DEFAULT_IMAGE", "inject", "undo_record", "delete_policy", "HeartbeatReader"]

METHODS = ("ephemeral", "exec", "network-policy")
DEFAULT_IMAGE = "nicolaka/netshoot:v0.13"

# Reads an agent pod's last heartbeat as the API reports it (any comparable value), None if unknown.
HeartbeatReader = Callable[[Any], Any]


def _egress_except(destinations: List[List[Any]]) -> List[Dict[str, Any]]:
    """Egress rules that allow everything but the route's addresses (no `endPort`: some CNIs ignore it)."""
    v4 = sorted({a for a, _ in destinations if ipaddress.ip_address(a).version == 4})
    v6 = sorted({a for a, _ in destinations if ipaddress.ip_address(a).version == 6})
    peers = [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [f"{a}/32" for a in v4]}}]
    peers.append(
        {"ipBlock": {"cidr": "::/0", "except": [f"{a}/128" for a in v6]}}
        if v6
        else {"ipBlock": {"cidr": "::/0"}}
    )
    for peer in peers:
        if not peer["ipBlock"].get("except"):
            peer["ipBlock"].pop("except", None)
    return [{"to": peers}]


def _record(cluster: Cluster, ns: str, pod: str, pid: str, record: Dict[str, Any]) -> None:
    body = {
        "metadata": {"annotations": {PARTITION_ANNOTATION_PREFIX + pid: json.dumps(record, sort_keys=True)}}
    }
    cluster.core.patch_namespaced_pod(pod, ns, body)


def _remove_record(cluster: Cluster, ns: str, pod: str, pid: str, label: bool = False) -> None:
    body: Dict[str, Any] = {"metadata": {"annotations": {PARTITION_ANNOTATION_PREFIX + pid: None}}}
    if label:
        body["metadata"]["labels"] = {TARGET_LABEL: None}
    try:
        cluster.core.patch_namespaced_pod(pod, ns, body)
    except KubeError as exc:
        if exc.status != 404:
            raise


def _fmt(dests: List[List[Any]]) -> str:
    return ", ".join(f"[{a}]:{p}" if ":" in a else f"{a}:{p}" for a, p in dests)


def _verify_by_probe(
    cluster: Cluster,
    ns: str,
    pod: str,
    container: str,
    tag: str,
    destinations: List[List[Any]],
    keep: List[List[Any]],
    wait: float,
) -> Dict[str, Any]:
    """Connect from the pod's network namespace: the route must be cut, the kube-apiserver reachable."""
    script = scripts.probe_script(tag, [tuple(d) for d in destinations], [tuple(d) for d in keep], wait)
    code, out, err = cluster.exec(ns, pod, container, ["sh", "-c", script])
    rules, cut_open, keep_closed, seen = 0, [], [], 0
    for line in (out or "").splitlines():
        words = line.split()
        if words[:1] == ["rules"] and len(words) > 1 and words[1].isdigit():
            rules = int(words[1])
        elif len(words) == 4 and words[0] in ("cut", "keep"):
            seen += 1
            if words[0] == "cut" and words[3] == "open":
                cut_open.append([words[1], int(words[2])])
            if words[0] == "keep" and words[3] == "closed":
                keep_closed.append([words[1], int(words[2])])
    where = f"{ns}/{pod}"
    if code != 0 or seen < len(destinations) + len(keep):
        detail = (err or out or "").strip().splitlines()[-1:] or [f"exit {code}"]
        return {
            "verified": False,
            "cause": f"the verification probe could not run in {where} ({detail[0][:160]})",
        }
    if rules == 0:
        return {"verified": False, "cause": f"the partition's rules never appeared in {where}"}
    if cut_open:
        return {
            "verified": False,
            "cause": f"{_fmt(cut_open)} stayed reachable from {where} (wrong route: pass 'destinations')",
        }
    if keep_closed:
        return {
            "verified": False,
            "cause": f"the kube-apiserver or cluster DNS ({_fmt(keep_closed)}) became unreachable from {where} too",
        }
    return {
        "verified": True,
        "how": "tcp-connect from the pod's network namespace",
        "cut": destinations,
        "still_reachable": keep,
        "rules": rules,
    }


def _verify_by_heartbeats(read: HeartbeatReader, pod: Any, interval: float, grace: float) -> Dict[str, Any]:
    """The agent's heartbeats must stop reaching the API: no new heartbeat within 2 intervals after
    `grace` (the time a CNI takes to apply a policy)."""
    time.sleep(grace)
    baseline = read(pod)
    deadline = time.monotonic() + 2 * interval + 0.5
    while time.monotonic() < deadline:
        time.sleep(max(0.2, interval / 4))
        current = read(pod)
        if baseline is None:
            baseline = current
            continue
        if current is not None and baseline is not None and current != baseline:
            return {
                "verified": False,
                "cause": "the agent's heartbeats still reach the API (the CNI does not enforce NetworkPolicies, or "
                "enforces them only for new connections)",
            }
    if baseline is None:
        return {
            "verified": False,
            "cause": "the agent's heartbeats could not be read from the StreamSpace API (check the credentials and "
            "STREAMSPACE_AGENT_ID_PREFIX), so the cut could not be verified",
        }
    return {
        "verified": True,
        "how": "no heartbeat reached the API",
        "window_s": round(2 * interval + 0.5 + grace, 3),
        "last_heartbeat": baseline,
    }


def inject(
    cluster: Cluster,
    ns: str,
    pods: List[Any],
    method: str,
    route: Dict[str, Any],
    duration: float,
    container: str,
    image: str,
    start_timeout: float,
    kube_api: Optional[List[List[Any]]] = None,
    probe_route: Optional[List[List[Any]]] = None,
    heartbeat: Optional[HeartbeatReader] = None,
    heartbeat_interval: float = 30.0,
    verify: bool = True,
) -> Dict[str, Any]:
    """Partition each of `pods` on `route["destinations"]`, verify the cut; returns the action's summary."""
    destinations = [[str(a), int(p)] for a, p in route["destinations"]]
    pid = pysecrets.token_hex(4)
    tag = scripts.RULE_TAG + pid
    seconds = int(math.ceil(duration))
    expires = int(utcnow().timestamp()) + seconds
    expires_at = iso(datetime.datetime.fromtimestamp(expires, tz=datetime.UTC))
    keep = list(kube_api or [])
    # Probe what was asked to be cut and the agent's real route (when an override replaced it).
    must_cut = destinations + [
        [str(a), int(p)] for a, p in probe_route or [] if [str(a), int(p)] not in destinations
    ]
    done: List[str] = []
    verifications: List[Dict[str, Any]] = []
    for pod in pods:
        name = pod.metadata.name
        record: Dict[str, Any] = {
            "method": method,
            "destinations": destinations,
            "expires_at": expires_at,
            "owner": RUN_ID,
        }
        injected_at = utcnow()
        if method == "exec":
            record["container"] = container
            _record(cluster, ns, name, pid, record)
            try:
                code, out, err = cluster.exec(
                    ns,
                    name,
                    container,
                    ["sh", "-c", scripts.exec_script([tuple(d) for d in destinations], tag, expires)],
                )
            except KubeError:
                _remove_record(cluster, ns, name, pid)  # nothing was injected: no record may outlive us
                raise
            if code != 0:
                _remove_record(cluster, ns, name, pid)
                raise ActivityFailed(
                    f"Partition by exec failed in {ns}/{name} container {container} (exit {code}: "
                    f"{(err or out).strip()[:200]}); the stock agent image has no iptables and no NET_ADMIN: "
                    "use method 'ephemeral'."
                )
            injected_at = utcnow()
            check = (
                _verify_by_probe(cluster, ns, name, container, tag, must_cut, keep, 5.0)
                if verify
                else {"verified": None}
            )
        elif method == "ephemeral":
            ephemeral = f"chaosstream-partition-{pid}"
            record["container"] = ephemeral
            _record(cluster, ns, name, pid, record)
            spec = {
                "name": ephemeral,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": [
                    "sh",
                    "-c",
                    scripts.ephemeral_script([tuple(d) for d in destinations], tag, expires),
                ],
                "targetContainerName": container,
                "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
            }
            existing = [
                c.to_dict() if hasattr(c, "to_dict") else c for c in (pod.spec.ephemeral_containers or [])
            ]
            body = {"spec": {"ephemeralContainers": [{"name": c["name"]} for c in existing] + [spec]}}
            try:
                cluster.core.patch_namespaced_pod_ephemeralcontainers(name, ns, body)
            except KubeError:
                # Admission refusals (Pod Security, webhooks) carry the API server's own message.
                _remove_record(cluster, ns, name, pid)
                raise
            # The partition starts when the container runs (after an image pull on a real node): measure
            # detection from then, not from the API call. A container that never starts stays recorded:
            # its deadline makes a late start a no-op, and heals keep the record until then.
            _wait_ephemeral_running(cluster, ns, name, ephemeral, start_timeout)
            injected_at = utcnow()
            check = (
                _verify_by_probe(cluster, ns, name, ephemeral, tag, must_cut, keep, 5.0)
                if verify
                else {"verified": None}
            )
        else:
            policy_name = f"chaosstream-partition-{pid}-{len(done)}"
            record["policy"] = policy_name
            record["label"] = TARGET_LABEL
            _record(cluster, ns, name, pid, record)
            selector_value = f"{pid}-{len(done)}"
            cluster.core.patch_namespaced_pod(
                name, ns, {"metadata": {"labels": {TARGET_LABEL: selector_value}}}
            )
            policy = {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {
                    "name": policy_name,
                    "namespace": ns,
                    "labels": dict(MANAGED_BY, **{PARTITION_LABEL: pid}),
                    "annotations": {
                        EXPIRES_ANNOTATION: expires_at,
                        "chaosstream.io/target-pod": name,
                        OWNER_ANNOTATION: RUN_ID,
                    },
                },
                "spec": {
                    "podSelector": {"matchLabels": {TARGET_LABEL: selector_value}},
                    "policyTypes": ["Egress"],
                    "egress": _egress_except(destinations),
                },
            }
            try:
                cluster.networking.create_namespaced_network_policy(ns, policy)
            except KubeError:
                _remove_record(cluster, ns, name, pid, label=True)
                raise
            from chaosstream.faults.deadman import spawn_reaper

            spawn_reaper(["networkpolicy", ns, policy_name, pid, str(expires)], cluster.secrets)
            injected_at = utcnow()
            if verify and heartbeat is not None:
                check = _verify_by_heartbeats(heartbeat, pod, heartbeat_interval, 1.0)
            else:
                check = {"verified": None, "how": "not checked (no StreamSpace API access)"}
        check["pod"] = name
        check["injected_at"] = iso(injected_at)
        check["verified_at"] = iso(utcnow())
        verifications.append(check)
        done.append(name)
        if check.get("verified") is False:
            fault = Fault(
                "partition", ns, name, pid, expires_at, record, cluster.core.read_namespaced_pod(name, ns)
            )
            try:
                undo_record(cluster, fault)
            except (KubeError, ActivityFailed):
                pass
            raise ActivityFailed(
                f"The {method} partition of {ns}/{name} did not cut the agent off and was undone: {check['cause']}."
            )
    return {
        "partition_id": pid,
        "method": method,
        "pods": done,
        "route": route,
        "destinations": destinations,
        "duration": seconds,
        "expires_at": expires_at,
        "verified": all(v.get("verified") for v in verifications),
        "verification": verifications,
    }


def _wait_ephemeral_running(cluster: Cluster, ns: str, pod: str, container: str, timeout: float) -> None:
    def check():
        current = cluster.core.read_namespaced_pod(pod, ns)
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
                    waiting = status.state.waiting
                    return False, (waiting.reason or "waiting") + (
                        f": {waiting.message}" if waiting.message else ""
                    )
        return False, "not started"

    wait_until(
        check,
        timeout,
        0.5,  # ≤ 2 Hz: each poll is a pod GET on the production API server
        lambda last: (
            f"The partition container {container} in {ns}/{pod} is not running after {timeout:g}s ({last}); it stays "
            "recorded and does nothing if it starts after its deadline: pin a reachable image with "
            "STREAMSPACE_PARTITION_IMAGE."
        ),
    )


def _heal_rules(cluster: Cluster, ns: str, pod: str, container: str, tag: str) -> bool:
    """Run the heal script in `container`; True if our rules were still there (or we cannot tell)."""
    _, out, _ = cluster.exec(ns, pod, container, ["sh", "-c", scripts.count_and_heal_script(tag)])
    first = (out or "").strip().splitlines()[:1]
    return not first or not first[0].isdigit() or int(first[0]) > 0


def _heal_rules_anywhere(cluster: Cluster, fault: Fault, recorded: str, tag: str) -> bool:
    """The rules live in the pod's network namespace, shared by its containers: if the recorded container
    cannot run the heal (gone, renamed, a corrupt record), try the pod's other containers."""
    others = [c.name for c in (fault.obj.spec.containers or []) if c.name != recorded] if fault.obj else []
    error: Exception = KubeError("no container to run the heal in")
    for container in [recorded, *others]:
        try:
            return _heal_rules(cluster, fault.namespace, fault.target, container, tag)
        except KubeError as exc:
            error = exc
    raise error


def delete_policy(cluster: Cluster, ns: str, name: str) -> bool:
    """Delete a NetworkPolicy; False when it was already gone."""
    try:
        cluster.networking.delete_namespaced_network_policy(name, ns)
    except KubeError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _helper_state(fault: Fault) -> Any:
    """The state of the fault's ephemeral helper container (partition or hang), or None if not reported."""
    statuses = {c.name: c for c in (fault.obj.status.ephemeral_container_statuses or [])}
    status = statuses.get(fault.record.get("container"))
    return status.state if status is not None else None


def undo_record(cluster: Cluster, fault: Fault) -> str:
    """Revert one partition record on its pod and drop the record; "" when it had already ended.

    Liveness is decided from the rules, not the container's state: a running container is asked to count
    and remove them. An ephemeral container that has not started yet cannot be removed (Kubernetes never
    removes ephemeral containers): its record stays until its deadline, after which a start is a no-op."""
    ns, name, pid, record = fault.namespace, fault.target, fault.fault_id, fault.record
    method = record.get("method")
    tag = scripts.RULE_TAG + pid
    live = False
    what = "hang" if method == "hang" else f"{method} partition"
    if method == "exec":
        live = _heal_rules_anywhere(cluster, fault, record.get("container") or "k8s-agent", tag)
    elif method in ("ephemeral", "hang"):
        # both run in an ephemeral helper container: only a running one can be asked to undo its work
        state = _helper_state(fault)
        if state is not None and state.running is not None:
            if method == "hang":
                from chaosstream.faults.process import thaw

                live = thaw(cluster, ns, name, record["container"], tag)
            else:
                live = _heal_rules(cluster, ns, name, record["container"], tag)
        elif (state is None or state.terminated is None) and not fault.expired():
            return f"{what} {pid} on pod {ns}/{name} has not started: it stays recorded until {fault.expires_at}, after which it cannot start"
    elif method == "network-policy":
        if record.get("policy"):
            live = delete_policy(cluster, ns, record["policy"])
    _remove_record(cluster, ns, name, pid, label=method == "network-policy")
    return f"{what} {pid} on pod {ns}/{name}" if live else ""
