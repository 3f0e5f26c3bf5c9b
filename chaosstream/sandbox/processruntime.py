"""The sandbox's container runtime: runs agent pods as real OS processes, each in its own network namespace.

It is the emulator's ``ContainerRuntime`` plug-in (the CRI side of a node); the emulator's kubelet decides
when pods start, stop and restart, and writes their status.

Pods whose template carries the annotation `sandbox.streamspace.io/process: agent` run the sandbox
agent (`python -m chaosstream.sandbox.agent`) with the container's env, in the pod's network namespace and
in its own PID and mount namespaces (`pidinit`: an init as PID 1, the agent as PID 2, as with `tini` or a
shared process namespace). Pods of the runner image (`RUNNER_IMAGE`, the CronJobs of deploy/kubernetes) run
their container's command and args as a process of this environment (its `chaos` and `chaosstream`), as
root in a private mount namespace where the pod's volumes are bind-mounted at their mountPaths (configMap
volumes as files, emptyDirs, the ServiceAccount token, ca.crt and namespace at
/var/run/secrets/kubernetes.io/serviceaccount); env comes from env (value, fieldRef, configMapKeyRef,
secretKeyRef) and envFrom, plus KUBERNETES_SERVICE_HOST/PORT pointing at the emulator's TLS port, so the
real client's in-cluster configuration works unchanged. Its log is served by `pods/log`. Other pods
(session pods) are simulated: they become Ready after `ready_delay`; a session pod (label `session`) serves
a small RFB server (`chaosstream.sandbox.rfb`, an asyncio listener in this process, not an OS process) on
each TCP containerPort it declares (3000, `vnc`), reachable through `pods/portforward` until the pod stops. Deleting a pod sends SIGTERM, then
SIGKILL after the grace period, floored at 2 s as a kubelet does. `exec` and ephemeral containers enter the
container's namespaces, so `iptables ... -j DROP` really cuts that pod off and nothing else, and `kill`
reaches the pod's processes only.
"""

import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from chaosstream.sandbox.kube import ContainerRuntime
from chaosstream.sandbox.netns import SandboxNetwork
from chaosstream.sandbox.rfb import RfbServer

__all__ = ["ProcessRuntime", "PROCESS_ANNOTATION"]

log = logging.getLogger("chaosstream.sandbox")

PROCESS_ANNOTATION = "sandbox.streamspace.io/process"
RUNNER_IMAGE = "chaostoolkit-streamspace"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
EXEC_TIMEOUT = 60.0
# A kubelet floors a deletion's grace period at 2 s (minimumGracePeriodInSeconds) and sends SIGTERM first:
# `kubectl delete pod --grace-period=0` is not a SIGKILL.
MINIMUM_GRACE_PERIOD = 2.0


def _uid(pod: Dict[str, Any]) -> str:
    return pod["metadata"]["uid"]


_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_refs(value: str, known: Dict[str, str]) -> str:
    """Expand `$(VAR)` as the kubelet does: a variable defined earlier in the container's env is
    substituted, an unknown reference stays as written, `$$` escapes to `$`."""

    def one(match: "re.Match[str]") -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return known[name] if name in known else match.group(0)

    return _REF.sub(one, value)


def _env_of(pod: Dict[str, Any], container: Dict[str, Any], pod_ip: str) -> Dict[str, str]:
    """The container env as the kubelet resolves it: values (with `$(VAR)` references to earlier
    entries expanded, so `AGENT_ID=$(AGENT_ID_PREFIX)-$(POD_NAME)` works as in the chart) and the
    downward API."""
    meta = pod["metadata"]
    env: Dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = expand_refs(str(item["value"]), env)
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
        vnc_frame_interval: float = 1.0,
    ) -> None:
        self.ready_delay = ready_delay
        self.vnc_frame_interval = vnc_frame_interval  # seconds between a session desktop's frames
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
        # Control-plane components by annotation value (`api`, `postgres`: sandbox/components.py); their
        # pods start and stop that component instead of a process of their own.
        self.components: Dict[str, Any] = {}
        self._component_pods: Dict[str, Any] = {}
        self.desktops: Dict[str, Dict[int, RfbServer]] = {}  # session pod uid → containerPort → server

    # -- helpers ---------------------------------------------------------------------------------------
    def is_process_pod(self, pod: Dict[str, Any]) -> bool:
        return (pod["metadata"].get("annotations") or {}).get(PROCESS_ANNOTATION) == "agent"

    @staticmethod
    def is_runner_pod(pod: Dict[str, Any]) -> bool:
        containers = (pod.get("spec") or {}).get("containers") or []
        return bool(containers) and RUNNER_IMAGE in str(containers[0].get("image", ""))

    def _lookup(self, kind: str, namespace: str, name: str) -> Dict[str, str]:
        """Data of a ConfigMap or Secret (decoded), {} when missing."""
        import base64

        obj = self.emulator.get_object("v1", kind, namespace, name) or {}
        data = dict(obj.get("data") or {})
        if kind == "Secret":
            data = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in data.items()}
        for key, value in (obj.get("stringData") or {}).items():
            data[key] = value
        return data

    def _runner_env(self, pod: Dict[str, Any], container: Dict[str, Any]) -> Dict[str, str]:
        ns = pod["metadata"]["namespace"]
        env: Dict[str, str] = {}
        for source in container.get("envFrom") or []:
            ref = source.get("configMapRef") or source.get("secretRef") or {}
            kind = "ConfigMap" if "configMapRef" in source else "Secret"
            prefix = source.get("prefix", "")
            for key, value in self._lookup(kind, ns, ref.get("name", "")).items():
                env[prefix + key] = value
        plain = [
            e
            for e in container.get("env") or []
            if "valueFrom" not in e or "fieldRef" in (e.get("valueFrom") or {})
        ]
        env.update(_env_of(pod, dict(container, env=plain), "127.0.0.1"))
        for item in container.get("env") or []:
            ref = item.get("valueFrom") or {}
            for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if key in ref:
                    data = self._lookup(kind, ns, ref[key].get("name", ""))
                    if ref[key].get("key") in data:
                        env[item["name"]] = data[ref[key]["key"]]
        return env

    def _runner_volumes(
        self, pod: Dict[str, Any], container: Dict[str, Any], root: Path
    ) -> List[Tuple[str, str]]:
        """Materialise the pod's volumes under `root`; returns (source dir, mountPath) pairs."""
        ns = pod["metadata"]["namespace"]
        volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
        mounts: List[Tuple[str, str]] = []
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount.get("name"), {})
            path = root / "volumes" / mount["name"]
            path.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume or "secret" in volume:
                kind = "ConfigMap" if "configMap" in volume else "Secret"
                ref = volume.get("configMap") or volume.get("secret") or {}
                for key, value in self._lookup(
                    kind, ns, ref.get("name") or ref.get("secretName", "")
                ).items():
                    (path / key).write_text(value)
            mounts.append((str(path), mount["mountPath"]))
        sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        if (pod.get("spec") or {}).get("automountServiceAccountToken", True):
            tokens = root / "serviceaccount"
            tokens.mkdir(parents=True, exist_ok=True)
            (tokens / "token").write_text(self.emulator.rbac.mint(ns, sa))
            (tokens / "namespace").write_text(ns)
            if self.emulator.tls_ca is not None:
                (tokens / "ca.crt").write_text(Path(self.emulator.tls_ca).read_text())
            mounts.append((str(tokens), SA_DIR))
        return mounts

    async def _start_runner(self, pod: Dict[str, Any]) -> Dict[str, Any]:
        import shlex

        uid = _uid(pod)
        container = pod["spec"]["containers"][0]
        root = self.state_dir / "pods" / uid
        mounts = self._runner_volumes(pod, container, root)
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "LANG", "TZ")}
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
        env.update(self._runner_env(pod, container))
        env.setdefault("HOSTNAME", pod["metadata"]["name"])
        if self.emulator.tls_port:
            env["KUBERNETES_SERVICE_HOST"] = "127.0.0.1"
            env["KUBERNETES_SERVICE_PORT"] = str(self.emulator.tls_port)
        argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
        script = ["set -e"]
        # a mount over a directory that holds the sources (an emptyDir at /tmp, with the state dir under
        # /tmp) would hide them: such mounts go last
        sources = [src for src, _ in mounts]
        mounts = sorted(mounts, key=lambda m: any(src.startswith(m[1].rstrip("/") + "/") for src in sources))
        # The runner's code (this checkout and the interpreter's import paths) may live under a mount
        # target too (a clone in /tmp under an emptyDir at /tmp): stage it aside first, put it back after.
        targets = [t.rstrip("/") + "/" for _, t in mounts]
        code = {str(Path(__file__).resolve().parents[2]), *(p for p in sys.path if p and os.path.isdir(p))}
        hidden = sorted(c for c in code if any((c.rstrip("/") + "/").startswith(t) for t in targets))
        for n, path in enumerate(hidden):
            script.append(
                f"mkdir -p /run/chaosstream-keep/{n} && mount --bind {shlex.quote(path)} /run/chaosstream-keep/{n}"
            )
        for source, target in mounts:
            script.append(
                f"mkdir -p {shlex.quote(target)} && mount --bind {shlex.quote(source)} {shlex.quote(target)}"
            )
        for n, path in enumerate(hidden):
            script.append(
                f"mkdir -p {shlex.quote(path)} && mount --bind /run/chaosstream-keep/{n} {shlex.quote(path)}"
            )
        script.append(f"cd {shlex.quote(container.get('workingDir') or '/')}")
        script.append('exec "$@"')
        wrapped = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            "\n".join(script),
            "sh",
            *argv,
        ]
        logfile = open(self.logs / f"{pod['metadata']['name']}.log", "ab")  # noqa: SIM115
        try:
            proc = await asyncio.create_subprocess_exec(
                *wrapped, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=logfile, stderr=logfile,
                start_new_session=True,
            )  # fmt: skip
        finally:
            logfile.close()
        self._procs[uid] = proc
        (self.pids / f"{uid}.pid").write_text(str(proc.pid))
        self._watchers[uid] = asyncio.create_task(self._watch(pod, proc))
        log.info("started runner pod %s (pid %s)", pod["metadata"]["name"], proc.pid)
        return {"podIP": "127.0.0.1", "hostIP": "127.0.0.1"}

    async def read_log(self, pod: Dict[str, Any], container: str) -> bytes:
        try:
            return (self.logs / f"{pod['metadata']['name']}.log").read_bytes()
        except FileNotFoundError:
            return b""

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

    async def _start_desktop(self, pod: Dict[str, Any]) -> None:
        """A session pod's VNC desktop: one RFB listener per declared TCP containerPort."""
        uid = _uid(pod)
        if uid in self.desktops:
            return
        servers: Dict[int, RfbServer] = {}
        name = pod["metadata"]["name"]
        for container in pod["spec"].get("containers") or []:
            for port in container.get("ports") or []:
                number = int(port.get("containerPort") or 0)
                if number and port.get("protocol", "TCP") == "TCP" and number not in servers:
                    server = RfbServer(f"streamspace {name}", self.vnc_frame_interval)
                    await server.start("127.0.0.1")
                    servers[number] = server
        self.desktops[uid] = servers

    async def _stop_desktop(self, uid: str) -> None:
        for server in self.desktops.pop(uid, {}).values():
            await server.stop()

    # -- ContainerRuntime hooks ------------------------------------------------------------------------
    async def start_pod(self, pod: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        component = self.components.get(
            (pod["metadata"].get("annotations") or {}).get(PROCESS_ANNOTATION, "")
        )
        if component is not None:
            self._component_pods[_uid(pod)] = component
            return await component.start(pod)
        if self.is_runner_pod(pod) and os.geteuid() == 0:
            return await self._start_runner(pod)
        if not self.is_process_pod(pod):
            if "session" in (pod["metadata"].get("labels") or {}):
                await self._start_desktop(pod)
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

    def pod_ready(self, pod: Dict[str, Any]) -> bool:
        component = self._component_pods.get(_uid(pod))
        return component.ready(pod) if component is not None else True

    async def open_port(
        self, pod: Dict[str, Any], port: int
    ) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        server = self.desktops.get(_uid(pod), {}).get(port)
        if server is None:
            raise ConnectionRefusedError(f"dial tcp4 127.0.0.1:{port}: connect: connection refused")
        return await asyncio.open_connection("127.0.0.1", server.port)

    async def stop_pod(self, pod: Dict[str, Any], grace_period: float) -> None:
        uid = _uid(pod)
        component = self._component_pods.pop(uid, None)
        if component is not None:
            await component.stop(pod, grace_period)
            return
        await self._stop_desktop(uid)
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
