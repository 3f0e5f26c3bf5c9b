"""Crash or freeze the agent process inside its pod, through an ephemeral container that shares the agent
container's process namespace (`targetContainerName`): works on a stock deployment, needs no capability.

- `crash`: the agent dies at once with no goodbye (SIGKILL; SIGQUIT when it is its container's PID 1, which
  a Go program dies on); the kubelet restarts the container in the same pod.
- `hang`: the agent is frozen (SIGSTOP) and thawed (SIGCONT) after `duration`: its socket stays open but
  nothing is sent, which only heartbeat-timeout detection can notice. Self-expiring and recorded like a
  partition (annotation `chaosstream.io/partition-<id>` with method `hang`), so heals and the reapers undo it.
"""

import datetime
import json
import math
import secrets as pysecrets
from typing import Any, Dict

from chaoslib.exceptions import ActivityFailed

from chaosstream.clients.kube import Cluster, KubeError
from chaosstream.faults import scripts
from chaosstream.faults.records import PARTITION_ANNOTATION_PREFIX, RUN_ID
from chaosstream.polling import wait_until
from chaosstream.timeutil import iso, utcnow

__all__ = ["crash", "hang", "thaw"]


def _add_container(
    cluster: Cluster, ns: str, pod: Any, name: str, image: str, target: str, script: str
) -> None:
    spec = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
        "targetContainerName": target,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    existing = [c.to_dict() if hasattr(c, "to_dict") else c for c in (pod.spec.ephemeral_containers or [])]
    body = {"spec": {"ephemeralContainers": [{"name": c["name"]} for c in existing] + [spec]}}
    cluster.core.patch_namespaced_pod_ephemeralcontainers(pod.metadata.name, ns, body)


def _state(cluster: Cluster, ns: str, pod: str, container: str) -> Any:
    current = cluster.core.read_namespaced_pod(pod, ns)
    for status in current.status.ephemeral_container_statuses or []:
        if status.name == container and status.state is not None:
            return status.state
    return None


def _restarts(cluster: Cluster, ns: str, pod: str, container: str) -> int:
    current = cluster.core.read_namespaced_pod(pod, ns)
    return sum(s.restart_count or 0 for s in current.status.container_statuses or [] if s.name == container)


def crash(cluster: Cluster, ns: str, pod: Any, container: str, image: str, timeout: float) -> Dict[str, Any]:
    """Kill the agent process inside `pod`; verified by the container's restart (or exit)."""
    name = pod.metadata.name
    helper = f"chaosstream-crash-{pysecrets.token_hex(4)}"
    before = _restarts(cluster, ns, name, container)
    _add_container(cluster, ns, pod, helper, image, container, scripts.crash_script())
    injected = utcnow()

    def died():
        current = cluster.core.read_namespaced_pod(name, ns)
        for status in current.status.container_statuses or []:
            if status.name == container and (
                (status.restart_count or 0) > before or (status.state and status.state.terminated)
            ):
                return True, "restarted"
        state = _state(cluster, ns, name, helper)
        if state is not None and state.terminated is not None and state.terminated.exit_code not in (0, None):
            raise ActivityFailed(
                f"The crash helper in {ns}/{name} failed (exit {state.terminated.exit_code}): the agent process was "
                "not killed."
            )
        return False, "waiting" if state is None or state.running is None else "running"

    wait_until(
        died,
        timeout,
        0.1,
        lambda last: (
            f"The agent container {container} in {ns}/{name} did not die within {timeout:g}s ({last})."
        ),
    )
    return {
        "pod": name,
        "mode": "crash",
        "helper": helper,
        "injected_at": iso(injected),
        "verified": True,
        "how": "the agent container restarted",
        "verified_at": iso(utcnow()),
    }


def hang(
    cluster: Cluster, ns: str, pod: Any, container: str, image: str, duration: float, timeout: float
) -> Dict[str, Any]:
    """Freeze the agent process for `duration`; recorded before anything is done; verified (state T)."""
    name = pod.metadata.name
    hid = pysecrets.token_hex(4)
    tag = scripts.RULE_TAG + hid
    helper = f"chaosstream-hang-{hid}"
    deadline = int(utcnow().timestamp()) + int(math.ceil(duration))
    expires_at = iso(datetime.datetime.fromtimestamp(deadline, tz=datetime.UTC))
    record = {"method": "hang", "container": helper, "expires_at": expires_at, "owner": RUN_ID}
    key = PARTITION_ANNOTATION_PREFIX + hid
    cluster.core.patch_namespaced_pod(
        name, ns, {"metadata": {"annotations": {key: json.dumps(record, sort_keys=True)}}}
    )
    try:
        _add_container(cluster, ns, pod, helper, image, container, scripts.hang_script(tag, deadline))
    except KubeError:
        cluster.core.patch_namespaced_pod(name, ns, {"metadata": {"annotations": {key: None}}})
        raise

    def running():
        state = _state(cluster, ns, name, helper)
        if state is not None and state.terminated is not None:
            cluster.core.patch_namespaced_pod(name, ns, {"metadata": {"annotations": {key: None}}})
            if state.terminated.exit_code == 4:
                raise ActivityFailed(
                    f"Cannot hang the agent in {ns}/{name}: it is PID 1 in its container and the kernel ignores SIGSTOP "
                    "sent to it from inside the pod (run it under an init such as tini, or set shareProcessNamespace)."
                )
            raise ActivityFailed(
                f"The hang helper in {ns}/{name} exited at once (exit {state.terminated.exit_code}"
                f"{': ' + state.terminated.message.strip() if state.terminated.message else ''}); the agent is not frozen."
            )
        return (state is not None and state.running is not None), "waiting"

    wait_until(
        running,
        timeout,
        0.05,
        lambda last: f"The hang helper in {ns}/{name} is not running after {timeout:g}s.",
    )
    injected = utcnow()
    _, out, _ = cluster.exec(ns, name, helper, ["sh", "-c", scripts.hang_state_script(tag, 5.0)])
    words = (out or "").split()
    if words[:1] != ["frozen"]:
        thaw(cluster, ns, name, helper, tag)
        cluster.core.patch_namespaced_pod(name, ns, {"metadata": {"annotations": {key: None}}})
        raise ActivityFailed(
            f"The agent process in {ns}/{name} was not frozen ({' '.join(words) or 'no answer'}) and the hang was undone."
        )
    return {
        "pod": name,
        "mode": "hang",
        "hang_id": hid,
        "helper": helper,
        "duration": int(math.ceil(duration)),
        "expires_at": expires_at,
        "injected_at": iso(injected),
        "verified": True,
        "how": f"agent process {words[1] if len(words) > 1 else '?'} is stopped (state T)",
        "verified_at": iso(utcnow()),
    }


def thaw(cluster: Cluster, ns: str, pod: str, helper: str, tag: str) -> bool:
    """End a hang early; True if it was in place."""
    _, out, _ = cluster.exec(ns, pod, helper, ["sh", "-c", scripts.thaw_script(tag)])
    return (out or "").strip().startswith("1")
