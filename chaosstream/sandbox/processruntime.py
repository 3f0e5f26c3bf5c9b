"""The sandbox's container runtime: runs agent pods as real OS processes, each in its own network namespace.

It is the emulator's ``ContainerRuntime`` plug-in (the CRI side of a node); the emulator's kubelet decides
when pods start, stop and restart, and writes their status.

Pods whose template carries the annotation `sandbox.streamspace.io/process: agent` run the sandbox
agent (`python -m chaosstream.sandbox.agent`) with the container's env, in the pod's network namespace and
in its own PID and mount namespaces (`pidinit`: an init as PID 1, the agent as PID 2, as with `tini` or a
shared process namespace); other pods (session pods) are simulated: they become Ready after `ready_delay`.
Deleting a pod sends SIGTERM, then SIGKILL after the grace period, floored at 2 s as a kubelet does.
`exec` and ephemeral containers enter the container's namespaces, so `iptables ... -j DROP` really cuts
that pod off and nothing else, and `kill` reaches the pod's processes only.
"""

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from chaosstream.sandbox.kube import ContainerRuntime
from chaosstream.sandbox.netns import SandboxNetwork

__all__ = ["ProcessRuntime", "PROCESS_ANNOTATION"]

log = logging.getLogger("chaosstream.sandbox")

PROCESS_ANNOTATION = "sandbox.streamspace.io/process"
EXEC_TIMEOUT = 60.0
# A kubelet floors a deletion's grace period at 2 s (minimumGracePeriodInSeconds) and sends SIGTERM first:
# `kubectl delete pod --grace-period=0` is not a SIGKILL.
MINIMUM_GRACE_PERIOD = 2.0


def _uid(pod: Dict[str, Any]) -> str:
    return pod["metadata"]["uid"]


def _env_of(pod: Dict[str, Any], container: Dict[str, Any], pod_ip: str) -> Dict[str, str]:
    """The container env as the kubelet resolves it (values and the downward API)."""
    meta = pod["metadata"]
    env: Dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        field = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        env[item["name"]] = {
            "metadata.name": meta.get("name", ""),
            "metadata.namespace": meta.get("namespace", ""),
            "metadata.uid": meta.get("uid", ""),
            "status.podIP": pod_ip,
            "spec.nodeName": (pod.get("spec") or {}).get("nodeName", ""),
        }.get(field or "", "")
    return env


class ProcessRuntime(ContainerRuntime):
    """Runs agent pods as processes; see the module docstring."""

    def __init__(
        self,
        state_dir: Path,
        network: Optional[SandboxNetwork],
        ready_delay: float = 0.3,
        image_pull: str = "fast",
    ) -> None:
        self.ready_delay = ready_delay
        self.image_pull = image_pull  # fast | slow:SECONDS | backoff:SECONDS (fails, then succeeds)
        self.state_dir = state_dir
        self.network = network
        self.logs = state_dir / "logs"
        self.pids = state_dir / "pids"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        self._procs: Dict[str, asyncio.subprocess.Process] = {}
        self._ephemeral: Dict[str, List[asyncio.subprocess.Process]] = {}
        self._stopping: set = set()
        self._watchers: Dict[str, asyncio.Task] = {}

    # -- helpers ---------------------------------------------------------------------------------------
    def is_process_pod(self, pod: Dict[str, Any]) -> bool:
        return (pod["metadata"].get("annotations") or {}).get(PROCESS_ANNOTATION) == "agent"

    def _wrap(self, pod: Dict[str, Any], argv: List[str]) -> List[str]:
        if self.network is not None and self.network.namespace_of(_uid(pod)):
            return self.network.wrap(_uid(pod), argv)
        return argv

    def _init_pid(self, pod: Dict[str, Any]) -> Optional[int]:
        """The host pid of the pod's PID-namespace init (see `pidinit`), or None."""
        proc = self._procs.get(_uid(pod))
        if proc is None or proc.returncode is not None:
            return None
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def _enter(self, pod: Dict[str, Any], argv: List[str]) -> List[str]:
        """argv run inside the container's namespaces (PID, mount, network), as exec and ephemeral
        containers targeting it are: `kill` and /proc there see the pod's processes only."""
        init = self._init_pid(pod)
        if init is None:
            raise RuntimeError("the container is not running")
        return ["nsenter", "-t", str(init), "-p", "-m", "-n", "--", *argv]

    # -- ContainerRuntime hooks ------------------------------------------------------------------------
    async def start_pod(self, pod: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        if not self.is_process_pod(pod):
            return None
        uid = _uid(pod)
        pod_ip = "127.0.0.1"
        if self.network is not None:
            pod_ip = await asyncio.to_thread(self.network.add_pod, uid)
        container = pod["spec"]["containers"][0]
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "PYTHONPATH", "LANG", "TZ")}
        env.update(_env_of(pod, container, pod_ip))
        env["PYTHONUNBUFFERED"] = "1"
        name = pod["metadata"]["name"]
        logfile = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child process
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._wrap(
                    pod,
                    [sys.executable, "-m", "chaosstream.sandbox.pidinit", "--"]
                    + [sys.executable, "-m", "chaosstream.sandbox.agent"],
                ),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logfile,
                stderr=logfile,
                start_new_session=True,  # Ctrl-C on the terminal must not bypass graceful deletion
            )
        finally:
            logfile.close()
        self._procs[uid] = proc
        (self.pids / f"{uid}.pid").write_text(str(proc.pid))
        self._watchers[uid] = asyncio.create_task(self._watch(pod, proc))
        log.info("started pod %s (pid %s, ip %s)", name, proc.pid, pod_ip)
        return {"podIP": pod_ip, "hostIP": "127.0.0.1"}

    async def _watch(self, pod: Dict[str, Any], proc: asyncio.subprocess.Process) -> None:
        rc = await proc.wait()
        uid = _uid(pod)
        if uid in self._stopping:
            return
        # The process died on its own (crash, fatal start-up error): report it like a container exit.
        self._procs.pop(uid, None)
        log.info("pod %s process exited with %s", pod["metadata"]["name"], rc)
        container = pod["spec"]["containers"][0]["name"]
        self.emulator.container_exited(pod["metadata"]["namespace"], pod["metadata"]["name"], container, rc)

    async def stop_pod(self, pod: Dict[str, Any], grace_period: float) -> None:
        uid = _uid(pod)
        self._stopping.add(uid)
        procs = [p for p in [self._procs.pop(uid, None), *self._ephemeral.pop(uid, [])] if p is not None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), timeout=max(grace_period, MINIMUM_GRACE_PERIOD))
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        watcher = self._watchers.pop(uid, None)
        if watcher is not None:
            watcher.cancel()
        with contextlib.suppress(FileNotFoundError):
            (self.pids / f"{uid}.pid").unlink()
        if self.network is not None:
            await asyncio.to_thread(self.network.remove_pod, uid)
        self._stopping.discard(uid)

    async def exec(
        self, pod: Dict[str, Any], container: str, command: List[str], stdin: Optional[bytes]
    ) -> Tuple[bytes, bytes, int]:
        if not self.is_process_pod(pod):
            return b"", b"this sandbox pod is simulated: there is no process to exec into\n", 126
        if self.network is None or not self.network.namespace_of(_uid(pod)):
            return (
                b"",
                b"exec in the sandbox needs root: pods get a network namespace only when the sandbox runs as root\n",
                126,
            )
        try:
            argv = self._enter(pod, command)
        except RuntimeError as exc:
            return b"", f"{exc}\n".encode(), 126
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            return b"", f"{command[0]}: executable file not found in $PATH\n".encode(), 127
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=EXEC_TIMEOUT)
        except TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
            return out, err + b"exec timed out\n", 124
        return out, err, proc.returncode or 0

    async def pull_image(self, pod: Dict[str, Any], container: Dict[str, Any], waiting: Any) -> None:
        """Emulate the node's image pull for an ephemeral container (`--image-pull`)."""
        mode, _, seconds = self.image_pull.partition(":")
        delay = float(seconds or 0)
        if mode == "fast" or delay <= 0:
            return
        image = container.get("image", "")
        if mode == "backoff":
            waiting("ErrImagePull", f'failed to pull image "{image}": 429 Too Many Requests')
            await asyncio.sleep(delay / 2)
            waiting("ImagePullBackOff", f'Back-off pulling image "{image}"')
            await asyncio.sleep(delay / 2)
        else:
            waiting("ContainerCreating", f'Pulling image "{image}"')
            await asyncio.sleep(delay)

    async def start_ephemeral_container(self, pod: Dict[str, Any], container: Dict[str, Any]) -> None:
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        if not argv:
            raise ValueError(f"ephemeral container {container.get('name')} has no command")
        if self.network is None or not self.network.namespace_of(_uid(pod)):
            raise RuntimeError("ephemeral containers in the sandbox need root (pod network namespaces)")
        name = pod["metadata"]["name"]
        logfile = open(self.logs / f"{name}.{container.get('name')}.log", "ab")  # noqa: SIM115
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._enter(pod, argv),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logfile,
                stderr=logfile,
                start_new_session=True,
            )
        finally:
            logfile.close()
        self._ephemeral.setdefault(_uid(pod), []).append(proc)
        asyncio.create_task(self._watch_ephemeral(pod, container.get("name", ""), proc))

    async def _watch_ephemeral(
        self, pod: Dict[str, Any], name: str, proc: asyncio.subprocess.Process
    ) -> None:
        """An ephemeral container whose command ended is `terminated` (never restarted), as a kubelet says."""
        rc = await proc.wait()
        if _uid(pod) in self._stopping:
            return
        self.emulator.container_exited(pod["metadata"]["namespace"], pod["metadata"]["name"], name, rc)

    def ephemeral_processes(self) -> Dict[str, List[int]]:
        """Live ephemeral-container processes by pod uid (for status and leftover checks)."""
        return {uid: [p.pid for p in procs if p.returncode is None] for uid, procs in self._ephemeral.items()}
