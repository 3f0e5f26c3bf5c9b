"""The node side of pods: scheduling onto ``sandbox-node``, start, readiness, restarts and graceful stop.

It turns store changes into calls on the ``Kubelet`` plug-in and writes the resulting pod status.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .resources import NODE, POD
from .store import clone, now_iso

if TYPE_CHECKING:
    from .emulator import KubeEmulator

Obj = dict[str, Any]
log = logging.getLogger(__name__)

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
class PodRuntime:
    """What the node knows about one pod (keyed by uid)."""

    namespace: str
    name: str
    started: bool = False
    stopped: bool = False
    start_task: asyncio.Task[None] | None = None
    stop_task: asyncio.Task[None] | None = None
    probe_task: asyncio.Task[None] | None = None
    ephemeral_started: set[str] = field(default_factory=set)
    restart_tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)


class NodeAgent:
    """Drives the ``Kubelet`` for every pod and owns the pod status fields a kubelet would write."""

    def __init__(self, emu: KubeEmulator) -> None:
        self.emu = emu
        self.runtimes: dict[str, PodRuntime] = {}
        self._next_ip = 2

    # ---- helpers -----------------------------------------------------------------------------
    @property
    def kubelet(self) -> Any:
        return self.emu.kubelet

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        return self.emu.spawn(coro)

    def _allocate_ip(self) -> str:
        n = self._next_ip
        self._next_ip += 1
        return f"10.244.{n // 250}.{n % 250 + 2}"

    def _current(self, rt: PodRuntime, uid: str) -> Obj | None:
        pod = self.emu.store.get(POD, rt.namespace, rt.name)
        return pod if pod is not None and pod["metadata"]["uid"] == uid else None

    def _write_status(self, pod: Obj, status: Obj) -> Obj:
        new = dict(pod, status=status)
        return self.emu.store.update(
            POD, pod["metadata"]["namespace"], pod["metadata"]["name"], new, "status"
        )

    def can_remove(self, pod: Obj) -> bool:
        """Whether a terminating pod's containers are gone (it may then leave the store)."""
        rt = self.runtimes.get(pod["metadata"]["uid"])
        return rt is None or not rt.started or rt.stopped

    # ---- reconcile ---------------------------------------------------------------------------
    def reconcile(self, namespace: str, name: str) -> None:
        """React to the current state of one pod (called by the controller manager)."""
        pod = self.emu.store.get(POD, namespace, name)
        if pod is None:
            return
        uid = pod["metadata"]["uid"]
        rt = self.runtimes.get(uid)
        if rt is None:
            rt = self.runtimes[uid] = PodRuntime(namespace, name)
        if pod["metadata"].get("deletionTimestamp"):
            if rt.stop_task is None:
                rt.stop_task = self._spawn(self._terminate(rt, uid))
            return
        if not pod["spec"].get("nodeName"):
            self._bind(pod)
            return
        if rt.start_task is None and pod["status"].get("phase") == "Pending":
            rt.start_task = self._spawn(self._start(rt, uid))
        if rt.started and not rt.stopped:
            for c in pod["spec"].get("ephemeralContainers") or []:
                if c["name"] not in rt.ephemeral_started:
                    rt.ephemeral_started.add(c["name"])
                    self._spawn(self._start_ephemeral(rt, uid, c))

    def forget(self, pod: Obj) -> None:
        """The pod left the store: stop it if it is still running (force deletion)."""
        uid = pod["metadata"]["uid"]
        rt = self.runtimes.get(uid)
        if rt is None:
            return
        if rt.started and not rt.stopped and rt.stop_task is None:
            rt.stop_task = self._spawn(self._stop_then_forget(rt, uid, pod, 0.0))
        elif rt.stop_task is None or rt.stop_task.done():
            self._drop(uid)

    def _drop(self, uid: str) -> None:
        rt = self.runtimes.pop(uid, None)
        if rt is None:
            return
        for task in [rt.probe_task, rt.start_task, *rt.restart_tasks.values()]:
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()

    def _bind(self, pod: Obj) -> None:
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
    async def _start(self, rt: PodRuntime, uid: str) -> None:
        pod = self._current(rt, uid)
        if pod is None:
            return
        for c in containers_of(pod, ephemeral=False):
            self.emu.record_event(
                pod, "Pulled", f'Container image "{c.get("image")}" already present on machine'
            )
            self.emu.record_event(pod, "Created", f"Created container: {c['name']}")
        rt.started = True
        try:
            extra = await self.kubelet.start_pod(clone(pod))
        except Exception as exc:  # the plug-in's failure becomes the pod's failure
            log.info("start_pod failed for %s/%s: %s", rt.namespace, rt.name, exc)
            rt.stopped = True
            pod = self._current(rt, uid)
            if pod is not None and not pod["metadata"].get("deletionTimestamp"):
                self._fail(pod, str(exc))
            return
        pod = self._current(rt, uid)
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
        rt.probe_task = self._spawn(self._probe(rt, uid))
        self.emu.controllers.enqueue(
            "pod", rt.namespace, rt.name
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
    async def _probe(self, rt: PodRuntime, uid: str) -> None:
        await asyncio.sleep(max(0.0, float(self.kubelet.ready_delay)))
        while True:
            pod = self._current(rt, uid)
            if (
                pod is None
                or pod["metadata"].get("deletionTimestamp")
                or pod["status"].get("phase") != "Running"
            ):
                return
            try:
                ready = bool(self.kubelet.pod_ready(clone(pod)))
            except Exception:  # a crashing probe reads as "not ready"
                log.exception("pod_ready failed")
                ready = False
            running = all(
                "running" in s.get("state", {}) for s in pod["status"].get("containerStatuses") or []
            )
            self.set_ready(pod, ready and running)
            await asyncio.sleep(max(0.05, float(self.kubelet.readiness_period)))

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
        rt = self.runtimes.get(uid)
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
            delay = min(5.0, float(self.kubelet.restart_backoff) * 2 ** (cs["restartCount"] - 1))
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
            if rt is not None:
                rt.stopped = True
        pod = self._write_status(pod, status)
        if restart:
            self.emu.record_event(
                pod,
                "BackOff",
                f"Back-off restarting failed container {container} in pod {name}_{namespace}({uid})",
                "Warning",
            )
            if rt is not None:
                old = rt.restart_tasks.get(container)
                if old is None or old.done():
                    rt.restart_tasks[container] = self._spawn(self._restart(rt, uid, container, delay))

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

    async def _restart(self, rt: PodRuntime, uid: str, container: str, delay: float) -> None:
        await asyncio.sleep(delay)
        pod = self._current(rt, uid)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        try:
            await self.kubelet.restart_container(clone(pod), container)
        except Exception as exc:
            log.info("restart of %s/%s failed: %s", rt.name, container, exc)
            self.container_exited(rt.namespace, rt.name, container, 128)
            return
        pod = self._current(rt, uid)
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
        if rt.probe_task is None or rt.probe_task.done():
            rt.probe_task = self._spawn(self._probe(rt, uid))

    # ---- ephemeral containers ----------------------------------------------------------------
    async def _start_ephemeral(self, rt: PodRuntime, uid: str, container: Obj) -> None:
        pod = self._current(rt, uid)
        if pod is None:
            return
        stamp = now_iso()
        try:
            await self.kubelet.start_ephemeral_container(clone(pod), clone(container))
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
        pod = self._current(rt, uid)
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
    async def _terminate(self, rt: PodRuntime, uid: str) -> None:
        pod = self._current(rt, uid)
        if pod is None:
            return
        grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
        if rt.start_task is not None and not rt.start_task.done():
            await asyncio.wait({rt.start_task})  # let a half-started pod finish starting, then stop it
        if rt.started and not rt.stopped:
            for c in containers_of(pod):
                self.emu.record_event(pod, "Killing", f"Stopping container {c['name']}")
            await self._stop(rt, pod, grace)
        rt.stopped = True
        self.emu.controllers.enqueue("finalize", "/pods", f"{rt.namespace}/{rt.name}")

    async def _stop(self, rt: PodRuntime, pod: Obj, grace: float) -> None:
        if rt.probe_task is not None and not rt.probe_task.done():
            rt.probe_task.cancel()
        try:
            await self.kubelet.stop_pod(clone(pod), grace)
        except Exception:
            log.exception("stop_pod failed for %s/%s", rt.namespace, rt.name)
        rt.stopped = True

    async def _stop_then_forget(self, rt: PodRuntime, uid: str, pod: Obj, grace: float) -> None:
        if rt.start_task is not None and not rt.start_task.done():
            await asyncio.wait({rt.start_task})
        await self._stop(rt, pod, grace)
        self._drop(uid)

    async def stop_all(self, grace: float) -> None:
        """Stop every running pod (emulator shutdown)."""
        jobs = []
        for uid, rt in list(self.runtimes.items()):
            if rt.started and not rt.stopped:
                pod = self.emu.store.get(POD, rt.namespace, rt.name)
                if pod is not None and pod["metadata"]["uid"] == uid:
                    jobs.append(self._stop(rt, pod, grace))
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)
        for uid in list(self.runtimes):
            self._drop(uid)


__all__ = ["NODE", "NODE_NAME", "NodeAgent", "containers_of", "is_ready", "node_object"]
