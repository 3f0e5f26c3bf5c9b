"""The ``Kubelet`` plug-in: how pods are actually run (the emulator drives it, the sandbox subclasses it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .emulator import KubeEmulator

Obj = dict[str, Any]


class Kubelet:
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
    emulator: KubeEmulator

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
