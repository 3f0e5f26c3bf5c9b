"""``ContainerRuntime``: the plug-in that actually runs pods, as a CRI runtime does for a real kubelet.

The emulator's kubelet (``kubelet.py``) owns the pod lifecycle and the pod status; it calls this plug-in to
start, stop, exec into and probe the pod's containers. The default runtime simulates them; the sandbox
plugs in one that runs OS processes (``chaosstream.sandbox.processruntime``).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from .resources import ResourceType

Obj = dict[str, Any]


class RuntimeHost(Protocol):
    """The emulator as a runtime sees it: its public helpers (``KubeEmulator`` implements them)."""

    def container_exited(self, namespace: str, pod: str, container: str, exit_code: int) -> None: ...

    def record_event(self, obj: Obj, reason: str, message: str, type: str = "Normal") -> None: ...

    def create_object(
        self, obj: Obj, rtype: ResourceType | None = None, namespace: str | None = None
    ) -> Obj: ...

    def get_object(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj | None: ...

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[Obj]: ...

    def update_object(self, obj: Obj, subresource: str | None = None) -> Obj: ...

    def delete_object(
        self, api_version: str, kind: str, namespace: str | None, name: str, grace_period: int | None = None
    ) -> None: ...


class ContainerRuntime:
    """Plug-in that runs pods.

    Default behaviour: pods become Running and Ready after ``ready_delay`` seconds, stopping is
    instantaneous, and exec returns rc 126 "no executor".  Every hook receives a private copy of the
    pod.  Hooks run on the emulator's event loop: do blocking work in an executor.
    """

    ready_delay: float = 0.0
    """Seconds between a pod's containers starting and the first ``pod_ready`` check."""
    readiness_period: float = 0.5
    """Seconds between later ``pod_ready`` checks (a pod can turn unready and back)."""
    restart_backoff: float = 0.2
    """First delay before restarting a crashed container; doubles per restart, capped at 5 s."""
    emulator: RuntimeHost
    """The emulator driving this runtime (set by ``KubeEmulator``); report exits with ``container_exited``."""

    async def start_pod(self, pod: Obj) -> Obj | None:
        """Start the pod's containers.

        May return a status patch merged into ``pod.status`` (e.g. ``{"podIP": "169.254.1.5"}``).
        Raising marks the pod Failed with the exception text as its message.
        """
        return None

    async def stop_pod(self, pod: Obj, grace_period: float) -> None:
        """Stop the pod (SIGTERM, SIGKILL after ``grace_period`` seconds); return once stopped."""
        return None

    async def exec(
        self, pod: Obj, container: str, command: list[str], stdin: bytes | None
    ) -> tuple[bytes, bytes, int]:
        """Run ``command`` in ``container``; returns ``(stdout, stderr, exit_code)``."""
        return b"", b"no executor\n", 126

    async def open_port(self, pod: Obj, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to TCP ``port`` inside the running pod (what ``pods/portforward`` relays to).

        Raise ``OSError`` when nothing listens there; its text goes to the client's error channel. The
        default runtime runs nothing, so every port is refused.
        """
        raise ConnectionRefusedError(f"dial tcp4 127.0.0.1:{port}: connect: connection refused")

    async def start_ephemeral_container(self, pod: Obj, container: Obj) -> None:
        """Start one ephemeral (debug) container added through ``pods/ephemeralcontainers``."""
        return None

    async def restart_container(self, pod: Obj, container: str) -> None:
        """Restart one container after it exited (see ``KubeEmulator.container_exited``).

        The default calls ``start_pod`` again, which is right for single-container pods; override it to
        restart just one container of a multi-container pod.
        """
        await self.start_pod(pod)

    async def read_log(self, pod: Obj, container: str) -> bytes:
        """Bytes served by ``pods/log`` (default: empty)."""
        return b""

    def pod_ready(self, pod: Obj) -> bool:
        """Readiness probe result; called after ``ready_delay`` and then every ``readiness_period``."""
        return True
