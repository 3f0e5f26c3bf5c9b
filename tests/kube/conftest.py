"""Fixtures for the Kubernetes emulator conformance suite: a threaded emulator and a real client."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from kubernetes import client, config

from chaosstream.sandbox.kube import KubeEmulator, Kubelet, write_kubeconfig


class RecordingKubelet(Kubelet):
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


def wait_for(cond: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll ``cond`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {cond}")
        time.sleep(interval)


@pytest.fixture
def kubelet() -> RecordingKubelet:
    return RecordingKubelet()


@pytest.fixture
def emu(kubelet: RecordingKubelet) -> Iterator[KubeEmulator]:
    emulator = KubeEmulator(kubelet=kubelet).start_in_thread()
    yield emulator
    emulator.stop_in_thread()


@pytest.fixture
def kubeconfig(emu: KubeEmulator, tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    write_kubeconfig(str(path), emu.url)
    return str(path)


@pytest.fixture
def api(kubeconfig: str) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=kubeconfig)
    yield api_client
    api_client.close()


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


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
