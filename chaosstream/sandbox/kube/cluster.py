"""``Cluster``: the emulator as its parts see it (kubelet, controllers, workload controllers, HTTP API).

``KubeEmulator`` implements it. The parts are typed against this protocol rather than against
``KubeEmulator`` itself, so that no module of the emulator imports the module that assembles it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, Protocol, TypeVar

from .resources import ResourceType
from .runtime import ContainerRuntime, RuntimeHost
from .store import Store

Obj = dict[str, Any]
T = TypeVar("T")


class PodLifecycle(Protocol):
    """The kubelet as the controller manager drives it."""

    def reconcile(self, namespace: str, name: str) -> None: ...

    def forget(self, pod: Obj) -> None: ...

    def can_remove(self, pod: Obj) -> bool: ...


class WorkQueue(Protocol):
    """The controller manager's queue as the kubelet feeds it."""

    def enqueue(self, controller: str, namespace: str, name: str) -> None: ...


class Cluster(RuntimeHost, Protocol):
    """Store, runtime, kubelet and controllers of one emulator, plus the writes with API semantics."""

    @property
    def store(self) -> Store: ...

    @property
    def runtime(self) -> ContainerRuntime: ...

    @property
    def kubelet(self) -> PodLifecycle: ...

    @property
    def controllers(self) -> WorkQueue: ...

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]: ...

    def delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        grace_period: int | None = None,
        propagation: str | None = None,
    ) -> tuple[Obj, bool]: ...

    def set_ephemeral_containers(self, namespace: str, name: str, new_pod: Obj) -> Obj: ...


__all__ = ["Cluster", "PodLifecycle", "WorkQueue"]
