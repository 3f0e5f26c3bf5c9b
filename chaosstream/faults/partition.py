"""Partition an agent pod from the control plane: inject, record, undo.

Three methods:
- `ephemeral` (works on a stock deployment): an ephemeral container with NET_ADMIN shares the agent
  pod's network namespace and inserts iptables DROP rules; its main process is the dead-man timer, so
  the partition ends after `duration` even if the runner dies.
- `exec`: the same rules through pods/exec into the agent container (needs iptables and NET_ADMIN
  there, which the stock agent image lacks); a detached `sleep` in the pod heals after `duration`.
- `network-policy`: a NetworkPolicy that allows every egress port but the control plane's (needs a
  policy-enforcing CNI); it carries `chaosstream.io/expires-at` and a detached reaper deletes it.
The record (a pod annotation) is written before anything is injected: a rollback must know even if
the runner dies in between.
"""

import datetime
import json
import math
import secrets as pysecrets
from typing import Any, Dict, List

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
    Fault,
)
from chaosstream.polling import wait_until
from chaosstream.timeutil import iso, utcnow

__all__ = ["METHODS", "DEFAULT_IMAGE", "inject", "undo_record", "delete_policy"]

METHODS = ("ephemeral", "exec", "network-policy")
DEFAULT_IMAGE = "nicolaka/netshoot:v0.13"


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


def _record(cluster: Cluster, ns: str, pod: str, pid: str, record: Dict[str, Any]) -> None:
    body = {
        "metadata": {"annotations": {PARTITION_ANNOTATION_PREFIX + pid: json.dumps(record, sort_keys=True)}}
    }
    cluster.core.patch_namespaced_pod(pod, ns, body)


def _remove_record(cluster: Cluster, ns: str, pod: str, pid: str) -> None:
    body = {"metadata": {"annotations": {PARTITION_ANNOTATION_PREFIX + pid: None}}}
    try:
        cluster.core.patch_namespaced_pod(pod, ns, body)
    except KubeError as exc:
        if exc.status != 404:
            raise


def inject(
    cluster: Cluster,
    ns: str,
    pods: List[Any],
    method: str,
    ports: List[int],
    duration: float,
    container: str,
    image: str,
    start_timeout: float,
) -> Dict[str, Any]:
    """Partition each of `pods`; returns the action's summary."""
    pid = pysecrets.token_hex(4)
    tag = scripts.RULE_TAG + pid
    seconds = int(math.ceil(duration))
    expires = utcnow().timestamp() + seconds
    expires_at = iso(datetime.datetime.fromtimestamp(expires, tz=datetime.UTC))
    done: List[str] = []
    for pod in pods:
        name = pod.metadata.name
        record: Dict[str, Any] = {"method": method, "ports": ports, "expires_at": expires_at, "owner": RUN_ID}
        if method == "exec":
            record["container"] = container
            _record(cluster, ns, name, pid, record)
            try:
                code, out, err = cluster.exec(
                    ns, name, container, ["sh", "-c", scripts.exec_script(ports, tag, seconds)]
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
        elif method == "ephemeral":
            ephemeral = f"chaosstream-partition-{pid}"
            record["container"] = ephemeral
            _record(cluster, ns, name, pid, record)
            spec = {
                "name": ephemeral,
                "image": image,
                "command": ["sh", "-c", scripts.ephemeral_script(ports, tag, seconds)],
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
                _remove_record(cluster, ns, name, pid)
                raise
            # The partition starts when the container runs (after an image pull on a real node): measure
            # detection from then, not from the API call.
            _wait_ephemeral_running(cluster, ns, name, ephemeral, start_timeout)
        else:
            policy_name = f"chaosstream-partition-{pid}-{len(done)}"
            record["policy"] = policy_name
            _record(cluster, ns, name, pid, record)
            labels = {k: v for k, v in (pod.metadata.labels or {}).items() if k != "pod-template-hash"}
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
                    "podSelector": {"matchLabels": labels},
                    "policyTypes": ["Egress"],
                    "egress": [{"ports": _allow_all_but(ports)}],
                },
            }
            try:
                cluster.networking.create_namespaced_network_policy(ns, policy)
            except KubeError:
                _remove_record(cluster, ns, name, pid)
                raise
            from chaosstream.faults.deadman import spawn_reaper

            spawn_reaper(["networkpolicy", ns, policy_name, pid, str(expires)])
        done.append(name)
    return {
        "partition_id": pid,
        "method": method,
        "pods": done,
        "ports": ports,
        "duration": seconds,
        "expires_at": expires_at,
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
                    return False, status.state.waiting.reason or "waiting"
        return False, "not started"

    wait_until(
        check,
        timeout,
        0.5,  # ≤ 2 Hz: each poll is a pod GET on the production API server
        lambda last: (
            f"The partition container {container} in {ns}/{pod} is not running after {timeout:g}s ({last})."
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


def undo_record(cluster: Cluster, fault: Fault) -> str:
    """Revert one partition record on its pod and drop the record; "" when it had already ended."""
    ns, name, pid, record = fault.namespace, fault.target, fault.fault_id, fault.record
    method = record.get("method")
    tag = scripts.RULE_TAG + pid
    live = False
    if method == "exec":
        live = _heal_rules_anywhere(cluster, fault, record.get("container") or "k8s-agent", tag)
    elif method == "ephemeral":
        statuses = {s.name: s for s in (fault.obj.status.ephemeral_container_statuses or [])}
        status = statuses.get(record.get("container"))
        if status is not None and status.state is not None and status.state.running is not None:
            live = _heal_rules(cluster, ns, name, record["container"], tag)
    elif method == "network-policy" and record.get("policy"):
        live = delete_policy(cluster, ns, record["policy"])
    _remove_record(cluster, ns, name, pid)
    return f"{method} partition {pid} on pod {ns}/{name}" if live else ""
