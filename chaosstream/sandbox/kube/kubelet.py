"""The emulator's kubelet: the pod lifecycle on the single node ``sandbox-node``.

Binding pods to the node, start, readiness probing, restarts per ``restartPolicy``, ephemeral containers and
graceful stop. It turns store changes into calls on the ``ContainerRuntime`` plug-in (``runtime.py``, the
CRI side: what actually runs the containers) and writes the pod status fields a real kubelet writes.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .resources import BY_KEY, NODE, POD
from .store import clone, now_iso

if TYPE_CHECKING:
    from .cluster import Cluster
    from .runtime import ContainerRuntime

Obj = dict[str, Any]
log = logging.getLogger(__name__)
PVC = BY_KEY["/persistentvolumeclaims"]

NODE_NAME = "sandbox-node"
NODE_IP = "127.0.0.1"


def node_object() -> Obj:
    """The single Node every pod is scheduled on."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "labels": {
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/control-plane": "",
            },
        },
        "spec": {"podCIDR": "10.244.0.0/16"},
        "status": {
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now_iso(),
                    "lastTransitionTime": now_iso(),
                },
            ],
            "addresses": [
                {"type": "InternalIP", "address": NODE_IP},
                {"type": "Hostname", "address": NODE_NAME},
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "sandbox",
                "containerRuntimeVersion": "sandbox://1.0",
                "kernelVersion": "sandbox",
                "kubeProxyVersion": "v1.32.0",
                "kubeletVersion": "v1.32.0",
                "machineID": "sandbox",
                "operatingSystem": "linux",
                "osImage": "chaosstream sandbox",
                "systemUUID": "sandbox",
            },
        },
    }


def is_ready(pod: Obj | None) -> bool:
    """Whether the pod's Ready condition is True."""
    for cond in (pod or {}).get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def containers_of(pod: Obj, ephemeral: bool = True) -> list[Obj]:
    """Regular containers, plus ephemeral ones when asked."""
    spec = pod.get("spec") or {}
    return list(spec.get("containers") or []) + (
        list(spec.get("ephemeralContainers") or []) if ephemeral else []
    )


@dataclass
class PodState:
    """What the kubelet knows about one pod (keyed by uid): its progress and its background tasks."""

    namespace: str
    name: str
    started: bool = False
    stopped: bool = False
    start_task: asyncio.Task[None] | None = None
    stop_task: asyncio.Task[None] | None = None
    probe_task: asyncio.Task[None] | None = None
    ephemeral_started: set[str] = field(default_factory=set)
    restart_tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)


class Kubelet:
    """Drives the ``ContainerRuntime`` for every pod and owns the pod status fields a kubelet writes."""

    def __init__(self, emu: Cluster) -> None:
        self.emu = emu
        self.pods: dict[str, PodState] = {}
        self._unschedulable: set[tuple[str, str]] = set()  # pods waiting for their claims
        self._next_ip = 2

    # ---- helpers -----------------------------------------------------------------------------
    @property
    def runtime(self) -> ContainerRuntime:
        return self.emu.runtime

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        return self.emu.spawn(coro)

    def _allocate_ip(self) -> str:
        n = self._next_ip
        self._next_ip += 1
        return f"10.244.{n // 250}.{n % 250 + 2}"

    def _current(self, ps: PodState, uid: str) -> Obj | None:
        pod = self.emu.store.get(POD, ps.namespace, ps.name)
        return pod if pod is not None and pod["metadata"]["uid"] == uid else None

    def _write_status(self, pod: Obj, status: Obj) -> Obj:
        new = dict(pod, status=status)
        return self.emu.store.update(
            POD, pod["metadata"]["namespace"], pod["metadata"]["name"], new, "status"
        )

    def can_remove(self, pod: Obj) -> bool:
        """Whether a terminating pod's containers are gone (it may then leave the store)."""
        ps = self.pods.get(pod["metadata"]["uid"])
        return ps is None or not ps.started or ps.stopped

    # ---- reconcile ---------------------------------------------------------------------------
    def reconcile(self, namespace: str, name: str) -> None:
        """React to the current state of one pod (called by the controller manager)."""
        pod = self.emu.store.get(POD, namespace, name)
        if pod is None:
            return
        uid = pod["metadata"]["uid"]
        ps = self.pods.get(uid)
        if ps is None:
            ps = self.pods[uid] = PodState(namespace, name)
        if pod["metadata"].get("deletionTimestamp"):
            if ps.stop_task is None:
                ps.stop_task = self._spawn(self._terminate(ps, uid))
            return
        if not pod["spec"].get("nodeName"):
            self._bind(pod)
            return
        if ps.start_task is None and pod["status"].get("phase") == "Pending":
            ps.start_task = self._spawn(self._start(ps, uid))
        if ps.started and not ps.stopped:
            for c in pod["spec"].get("ephemeralContainers") or []:
                if c["name"] not in ps.ephemeral_started:
                    ps.ephemeral_started.add(c["name"])
                    self._spawn(self._start_ephemeral(ps, uid, c))

    def forget(self, pod: Obj) -> None:
        """The pod left the store: stop it if it is still running (force deletion)."""
        uid = pod["metadata"]["uid"]
        ps = self.pods.get(uid)
        if ps is None:
            return
        if ps.started and not ps.stopped and ps.stop_task is None:
            ps.stop_task = self._spawn(self._stop_then_forget(ps, uid, pod, 0.0))
        elif ps.stop_task is None or ps.stop_task.done():
            self._drop(uid)

    def _drop(self, uid: str) -> None:
        ps = self.pods.pop(uid, None)
        if ps is None:
            return
        for task in [ps.probe_task, ps.start_task, *ps.restart_tasks.values()]:
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()

    def _unbound_claims(self, pod: Obj) -> list[str]:
        """The pod's PersistentVolumeClaims that are missing or not Bound (the scheduler's volume check)."""
        ns = pod["metadata"]["namespace"]
        out = []
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if name:
                claim = self.emu.store.get(PVC, ns, name)
                if claim is None or (claim.get("status") or {}).get("phase") != "Bound":
                    out.append(name)
        return out

    async def _retry_schedule(self, namespace: str, name: str) -> None:
        try:
            await asyncio.sleep(1.0)  # the scheduler's back-off queue
        finally:
            self._unschedulable.discard((namespace, name))
        self.emu.controllers.enqueue("pod", namespace, name)

    def _bind(self, pod: Obj) -> None:
        unbound = self._unbound_claims(pod)
        if unbound:
            message = "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."
            conditions = (pod.get("status") or {}).get("conditions") or []
            if not any(c.get("type") == "PodScheduled" and c.get("message") == message for c in conditions):
                status = dict(pod.get("status") or {}, phase="Pending")
                status["conditions"] = [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                     "lastTransitionTime": now_iso(), "lastProbeTime": None}
                ]  # fmt: skip
                pending = self._write_status(pod, status)
                self.emu.record_event(pending, "FailedScheduling", message, "Warning")
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            if key not in self._unschedulable:
                self._unschedulable.add(key)
                self._spawn(self._retry_schedule(*key))
            return
        new = clone(pod)
        new["spec"]["nodeName"] = NODE_NAME
        new["status"] = dict(new.get("status") or {}, phase="Pending")
        new["status"]["conditions"] = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_iso(), "lastProbeTime": None}
        ]
        bound = self.emu.store.put_system(POD, new)
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        self.emu.record_event(bound, "Scheduled", f"Successfully assigned {ns}/{name} to {NODE_NAME}")

    # ---- start -------------------------------------------------------------------------------
    async def _start(self, ps: PodState, uid: str) -> None:
        pod = self._current(ps, uid)
        if pod is None:
            return
        for c in containers_of(pod, ephemeral=False):
            self.emu.record_event(
                pod, "Pulled", f'Container image "{c.get("image")}" already present on machine'
            )
            self.emu.record_event(pod, "Created", f"Created container: {c['name']}")
        ps.started = True
        try:
            extra = await self.runtime.start_pod(clone(pod))
        except Exception as exc:  # the plug-in's failure becomes the pod's failure
            log.info("start_pod failed for %s/%s: %s", ps.namespace, ps.name, exc)
            ps.stopped = True
            pod = self._current(ps, uid)
            if pod is not None and not pod["metadata"].get("deletionTimestamp"):
                self._fail(pod, str(exc))
            return
        pod = self._current(ps, uid)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        stamp = now_iso()
        status = clone(pod.get("status") or {})
        status.update(
            phase="Running",
            hostIP=NODE_IP,
            hostIPs=[{"ip": NODE_IP}],
            podIP=status.get("podIP") or self._allocate_ip(),
            startTime=stamp,
            conditions=self._conditions(False, stamp),
            containerStatuses=[self._running_status(c, stamp) for c in pod["spec"]["containers"]],
        )
        if extra:
            status.update(extra)
        status["podIPs"] = [{"ip": status["podIP"]}]
        pod = self._write_status(pod, status)
        for c in pod["spec"]["containers"]:
            self.emu.record_event(pod, "Started", f"Started container {c['name']}")
        ps.probe_task = self._spawn(self._probe(ps, uid))
        self.emu.controllers.enqueue(
            "pod", ps.namespace, ps.name
        )  # pick up ephemeral containers added meanwhile

    def _running_status(self, c: Obj, stamp: str, restart_count: int = 0, last: Obj | None = None) -> Obj:
        return {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": f"sandbox://{c.get('image', '')}",
            "containerID": f"sandbox://{c['name']}-{restart_count}",
            "ready": False,
            "started": True,
            "restartCount": restart_count,
            "state": {"running": {"startedAt": stamp}},
            "lastState": last or {},
        }

    @staticmethod
    def _conditions(ready: bool, stamp: str, reason: str = "") -> list[Obj]:
        flag = "True" if ready else "False"
        extra = {"reason": reason} if reason and not ready else {}
        return [
            {
                "type": "PodReadyToStartContainers",
                "status": "True",
                "lastTransitionTime": stamp,
                "lastProbeTime": None,
            },
            {"type": "Initialized", "status": "True", "lastTransitionTime": stamp, "lastProbeTime": None},
            {"type": "Ready", "status": flag, "lastTransitionTime": stamp, "lastProbeTime": None, **extra},
            {
                "type": "ContainersReady",
                "status": flag,
                "lastTransitionTime": stamp,
                "lastProbeTime": None,
                **extra,
            },
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp, "lastProbeTime": None},
        ]

    def _fail(self, pod: Obj, message: str) -> None:
        stamp = now_iso()
        status = clone(pod.get("status") or {})
        status.update(
            phase="Failed",
            reason="StartError",
            message=message,
            conditions=self._conditions(False, stamp, "PodFailed"),
        )
        status["containerStatuses"] = [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": 128,
                        "reason": "StartError",
                        "message": message,
                        "startedAt": stamp,
                        "finishedAt": stamp,
                    }
                },
            }
            for c in pod["spec"]["containers"]
        ]
        pod = self._write_status(pod, status)
        self.emu.record_event(pod, "Failed", f"Error: {message}", "Warning")

    # ---- readiness ---------------------------------------------------------------------------
    async def _probe(self, ps: PodState, uid: str) -> None:
        await asyncio.sleep(max(0.0, float(self.runtime.ready_delay)))
        while True:
            pod = self._current(ps, uid)
            if (
                pod is None
                or pod["metadata"].get("deletionTimestamp")
                or pod["status"].get("phase") != "Running"
            ):
                return
            try:
                ready = bool(self.runtime.pod_ready(clone(pod)))
            except Exception:  # a crashing probe reads as "not ready"
                log.exception("pod_ready failed")
                ready = False
            running = all(
                "running" in s.get("state", {}) for s in pod["status"].get("containerStatuses") or []
            )
            self.set_ready(pod, ready and running)
            await asyncio.sleep(max(0.05, float(self.runtime.readiness_period)))

    def set_ready(self, pod: Obj, ready: bool) -> None:
        """Flip the Ready/ContainersReady conditions and the containers' ``ready`` flags."""
        if is_ready(pod) == ready and all(
            s.get("ready") == (ready and "running" in s.get("state", {}))
            for s in pod["status"].get("containerStatuses") or []
        ):
            return
        status = clone(pod["status"])
        stamp = now_iso()
        for cond in status.get("conditions") or []:
            if cond["type"] in ("Ready", "ContainersReady"):
                cond.update(status="True" if ready else "False", lastTransitionTime=stamp)
                if ready:
                    cond.pop("reason", None)
                else:
                    cond["reason"] = "ContainersNotReady"
        for s in status.get("containerStatuses") or []:
            s["ready"] = ready and "running" in s.get("state", {})
        self._write_status(pod, status)

    # ---- containers exiting on their own -----------------------------------------------------
    def container_exited(self, namespace: str, name: str, container: str, exit_code: int) -> None:
        """A container's process ended: restart it per ``restartPolicy`` or finish the pod."""
        pod = self.emu.store.get(POD, namespace, name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        uid = pod["metadata"]["uid"]
        ps = self.pods.get(uid)
        status = clone(pod.get("status") or {})
        statuses = status.get("containerStatuses") or []
        cs = next((s for s in statuses if s["name"] == container), None)
        if cs is None:
            ec = next(
                (s for s in status.get("ephemeralContainerStatuses") or [] if s["name"] == container), None
            )
            if ec is not None:  # ephemeral containers are never restarted
                ec["state"] = {"terminated": self._terminated(exit_code, ec)}
                ec["ready"] = False
                self._write_status(pod, status)
            return
        policy = pod["spec"].get("restartPolicy", "Always")
        restart = policy == "Always" or (policy == "OnFailure" and exit_code != 0)
        terminated = self._terminated(exit_code, cs)
        cs["ready"] = False
        if restart:
            cs["lastState"] = {"terminated": terminated}
            cs["restartCount"] = int(cs.get("restartCount", 0)) + 1
            delay = min(5.0, float(self.runtime.restart_backoff) * 2 ** (cs["restartCount"] - 1))
            cs["state"] = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {math.ceil(delay)}s restarting failed container="
                    f"{container} pod={name}_{namespace}({uid})",
                }
            }
        else:
            cs["state"] = {"terminated": terminated}
        stamp = now_iso()
        for cond in status.get("conditions") or []:
            if cond["type"] in ("Ready", "ContainersReady"):
                cond.update(status="False", reason="ContainersNotReady", lastTransitionTime=stamp)
        if not restart and all("terminated" in s.get("state", {}) for s in statuses):
            failed = any(s["state"]["terminated"].get("exitCode", 0) != 0 for s in statuses)
            status["phase"] = "Failed" if failed else "Succeeded"
            if ps is not None:
                ps.stopped = True
        pod = self._write_status(pod, status)
        if restart:
            self.emu.record_event(
                pod,
                "BackOff",
                f"Back-off restarting failed container {container} in pod {name}_{namespace}({uid})",
                "Warning",
            )
            if ps is not None:
                old = ps.restart_tasks.get(container)
                if old is None or old.done():
                    ps.restart_tasks[container] = self._spawn(self._restart(ps, uid, container, delay))

    @staticmethod
    def _terminated(exit_code: int, cs: Obj) -> Obj:
        started = (cs.get("state", {}).get("running") or {}).get("startedAt")
        return {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": started,
            "finishedAt": now_iso(),
            "containerID": cs.get("containerID", ""),
        }

    async def _restart(self, ps: PodState, uid: str, container: str, delay: float) -> None:
        await asyncio.sleep(delay)
        pod = self._current(ps, uid)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        try:
            await self.runtime.restart_container(clone(pod), container)
        except Exception as exc:
            log.info("restart of %s/%s failed: %s", ps.name, container, exc)
            self.container_exited(ps.namespace, ps.name, container, 128)
            return
        pod = self._current(ps, uid)
        if pod is None:
            return
        status = clone(pod["status"])
        for s in status.get("containerStatuses") or []:
            if s["name"] == container:
                fresh = self._running_status(
                    {"name": container, "image": s.get("image", "")},
                    now_iso(),
                    s.get("restartCount", 0),
                    s.get("lastState"),
                )
                s.update(fresh)
        self._write_status(pod, status)
        self.emu.record_event(pod, "Started", f"Started container {container}")
        if ps.probe_task is None or ps.probe_task.done():
            ps.probe_task = self._spawn(self._probe(ps, uid))

    # ---- ephemeral containers ----------------------------------------------------------------
    async def _start_ephemeral(self, ps: PodState, uid: str, container: Obj) -> None:
        pod = self._current(ps, uid)
        if pod is None:
            return
        pull = getattr(self.runtime, "pull_image", None)
        if pull is not None:
            # Image pulls take time on a node (and may fail, back off and succeed later): report the
            # container as waiting meanwhile, as a kubelet does.
            def waiting(reason: str, message: str) -> None:
                self._set_ephemeral_state(
                    ps, uid, container, {"waiting": {"reason": reason, "message": message}}
                )

            await pull(clone(pod), clone(container), waiting)
            pod = self._current(ps, uid)
            if pod is None:
                return
        stamp = now_iso()
        try:
            await self.runtime.start_ephemeral_container(clone(pod), clone(container))
            state: Obj = {"running": {"startedAt": stamp}}
            self.emu.record_event(pod, "Started", f"Started container {container['name']}")
        except Exception as exc:
            state = {
                "terminated": {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": str(exc),
                    "startedAt": stamp,
                    "finishedAt": now_iso(),
                }
            }
            self.emu.record_event(pod, "Failed", f"Error: {exc}", "Warning")
        self._set_ephemeral_state(ps, uid, container, state)

    def _set_ephemeral_state(self, ps: PodState, uid: str, container: Obj, state: Obj) -> None:
        pod = self._current(ps, uid)
        if pod is None:
            return
        status = clone(pod["status"])
        statuses = [
            s for s in status.get("ephemeralContainerStatuses") or [] if s["name"] != container["name"]
        ]
        statuses.append(
            {
                "name": container["name"],
                "image": container.get("image", ""),
                "imageID": f"sandbox://{container.get('image', '')}",
                "containerID": f"sandbox://{container['name']}",
                "ready": False,
                "restartCount": 0,
                "state": state,
                "lastState": {},
            }
        )
        status["ephemeralContainerStatuses"] = statuses
        self._write_status(pod, status)

    # ---- termination -------------------------------------------------------------------------
    async def _terminate(self, ps: PodState, uid: str) -> None:
        pod = self._current(ps, uid)
        if pod is None:
            return
        grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
        if ps.start_task is not None and not ps.start_task.done():
            await asyncio.wait({ps.start_task})  # let a half-started pod finish starting, then stop it
        if ps.started and not ps.stopped:
            for c in containers_of(pod):
                self.emu.record_event(pod, "Killing", f"Stopping container {c['name']}")
            await self._stop(ps, pod, grace)
        ps.stopped = True
        self.emu.controllers.enqueue("finalize", "/pods", f"{ps.namespace}/{ps.name}")

    async def _stop(self, ps: PodState, pod: Obj, grace: float) -> None:
        if ps.probe_task is not None and not ps.probe_task.done():
            ps.probe_task.cancel()
        try:
            await self.runtime.stop_pod(clone(pod), grace)
        except Exception:
            log.exception("stop_pod failed for %s/%s", ps.namespace, ps.name)
        ps.stopped = True

    async def _stop_then_forget(self, ps: PodState, uid: str, pod: Obj, grace: float) -> None:
        if ps.start_task is not None and not ps.start_task.done():
            await asyncio.wait({ps.start_task})
        await self._stop(ps, pod, grace)
        self._drop(uid)

    async def stop_all(self, grace: float) -> None:
        """Stop every running pod (emulator shutdown)."""
        jobs = []
        for uid, ps in list(self.pods.items()):
            if ps.started and not ps.stopped:
                pod = self.emu.store.get(POD, ps.namespace, ps.name)
                if pod is not None and pod["metadata"]["uid"] == uid:
                    jobs.append(self._stop(ps, pod, grace))
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)
        for uid in list(self.pods):
            self._drop(uid)


__all__ = ["NODE", "NODE_NAME", "Kubelet", "PodState", "containers_of", "is_ready", "node_object"]
