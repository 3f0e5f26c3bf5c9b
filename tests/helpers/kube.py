"""The real Kubernetes emulator of the sandbox, in a thread, for tests that need a Kubernetes API (never a
stand-in: a broken emulator must fail these tests), plus a recording kubelet and manifests."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from chaosstream.sandbox.kube import ContainerRuntime, KubeEmulator, write_kubeconfig


@contextmanager
def emulator(kubeconfig: Path, namespace: str = "default", runtime: Any = None) -> Iterator[KubeEmulator]:
    """A started `KubeEmulator` (with `runtime`, its container plug-in, if given) with `namespace` created
    and a kubeconfig for it written at `kubeconfig` (its context's namespace is `namespace`); stopped on
    exit."""
    emu = KubeEmulator(runtime).start_in_thread()
    try:
        write_kubeconfig(str(kubeconfig), emu.url, namespace)
        if namespace not in ("default", "kube-system"):
            emu.create_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        yield emu
    finally:
        emu.stop_in_thread()


class RecordingRuntime(ContainerRuntime):
    """A test kubelet: records every call; ``echo``/``cat``/``fail``/``env`` commands for exec."""

    def __init__(self, ready_delay: float = 0.0, stop_delay: float = 0.0) -> None:
        self.ready_delay = ready_delay
        self.stop_delay = stop_delay
        self.calls: list[tuple[str, str, Any]] = []
        self.fail_start: set[str] = set()
        self.ready_override: dict[str, bool] = {}
        self.snapshots: dict[str, Any] = {}

    async def start_pod(self, pod: dict) -> dict | None:
        name = pod["metadata"]["name"]
        self.calls.append(("start", name, None))
        if name in self.fail_start or pod["metadata"].get("labels", {}).get("fail") == "start":
            raise RuntimeError("image pull failed: no such image")
        return {"podIP": "169.254.1.5"} if pod["metadata"].get("labels", {}).get("fixed-ip") else None

    async def stop_pod(self, pod: dict, grace_period: float) -> None:
        name = pod["metadata"]["name"]
        # What the API shows while we are stopping, and which pods are Ready at that moment.
        self.snapshots[name] = {
            p["metadata"]["name"]: _ready(p) for p in self.emulator.list_objects("v1", "Pod", None)
        }
        self.calls.append(("stop", name, grace_period))
        await asyncio.sleep(min(self.stop_delay, grace_period))

    async def exec(self, pod: dict, container: str, command: list[str], stdin: bytes | None):
        self.calls.append(("exec", pod["metadata"]["name"], (container, command)))
        if command[0] == "echo":
            return (" ".join(command[1:]) + "\n").encode(), b"", 0
        if command[0] == "cat":
            return stdin or b"", b"", 0
        if command[0] == "fail":
            return b"partial\n", b"boom\n", int(command[1]) if len(command) > 1 else 3
        if command[0] == "whoami":
            return f"{pod['metadata']['name']}/{container}\n".encode(), b"", 0
        return b"", b"unknown command\n", 127

    async def start_ephemeral_container(self, pod: dict, container: dict) -> None:
        self.calls.append(("ephemeral", pod["metadata"]["name"], container["name"]))
        if container["name"] == "broken":
            raise RuntimeError("cannot join namespace")

    async def read_log(self, pod: dict, container: str) -> bytes:
        return f"log of {pod['metadata']['name']}/{container}\nline2\n".encode()

    def pod_ready(self, pod: dict) -> bool:
        return self.ready_override.get(pod["metadata"]["name"], True)


def _ready(pod: dict) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", [])
    )


def pod_manifest(name: str, labels: dict[str, str] | None = None, containers: int = 1, **spec: Any) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {
            "containers": [
                {"name": f"c{i}" if containers > 1 else "main", "image": "busybox:1.36"}
                for i in range(containers)
            ],
            **spec,
        },
    }


def deployment_manifest(name: str, replicas: int = 1, strategy: dict | None = None) -> dict:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
        },
    }
    if strategy:
        spec["strategy"] = strategy
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": spec,
    }
