"""The control plane's pods as the sandbox's container runtime runs them (see sandbox/topology.py).

* An `api` pod is one API replica: its own control-plane app (own agent hub, dispatcher, sweeper,
  reconciler) on a private loopback port, registered with the Service's balancer while it runs. Deleting
  the pod stops that replica (its agents' sockets close; they reconnect through the Service to a replica
  that runs) and the Deployment's replacement pod starts a fresh one — the kubelet's restart.
* The `postgres` pod is the embedded PostgreSQL server: stopping the pod stops the server (every client
  connection drops), the StatefulSet's replacement `streamspace-postgres-0` starts it on the same port and
  data (the PVC). Its first pod finds the server the sandbox initialised and adopts it (what the image's
  entrypoint does on first boot: initdb and the schema are already there).

Replicas read `AGENTHUB_REDIS_ENABLED` from their pod's env, as `api/cmd/main.go:170-205` does: `true`
gives them a shared agent routing table (the intended install, with Redis); `false` (the chart default)
leaves each replica with only the agents whose socket it holds.
"""

import asyncio
import contextlib
import dataclasses
import logging
from typing import Any, Callable, Dict, List, Optional

from aiohttp import web

from chaosstream.sandbox.servicelb import ServiceBalancer

__all__ = ["ApiReplicas", "PostgresPod", "Component"]

log = logging.getLogger("chaosstream.sandbox")
Obj = Dict[str, Any]


class Component:
    """What the container runtime calls for a pod of one control-plane component."""

    async def start(self, pod: Obj) -> Optional[Obj]:
        raise NotImplementedError

    async def stop(self, pod: Obj, grace: float) -> None:
        raise NotImplementedError

    def ready(self, pod: Obj) -> bool:
        raise NotImplementedError


def _env(pod: Obj, name: str) -> str:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for item in container.get("env") or []:
            if item.get("name") == name and "value" in item:
                return str(item["value"])
    return ""


@dataclasses.dataclass
class Replica:
    pod: str
    runner: web.AppRunner
    port: int
    shared_routing: bool


class ApiReplicas(Component):
    """The running API replicas, by pod uid; `make_app(pod name, shared routing)` builds one app."""

    def __init__(self, make_app: Callable[[str, bool], web.Application], balancer: ServiceBalancer) -> None:
        self.make_app = make_app
        self.balancer = balancer
        self.replicas: Dict[str, Replica] = {}
        self._retries: Dict[str, asyncio.Task] = {}
        self.detached = False  # sandbox shutdown: the sandbox stops the replicas itself, in order
        self.changed = asyncio.Event()

    def _publish(self) -> None:
        self.balancer.set_backends([("127.0.0.1", r.port) for r in self.replicas.values()])
        self.changed.set()

    async def _serve(self, name: str, shared: bool) -> Replica:
        runner = web.AppRunner(self.make_app(name, shared), handle_signals=False, shutdown_timeout=1.0)
        try:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, reuse_address=True)
            await site.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await runner.cleanup()
            raise
        return Replica(name, runner, runner.addresses[0][1], shared)

    async def start(self, pod: Obj) -> Optional[Obj]:
        uid, name = pod["metadata"]["uid"], pod["metadata"]["name"]
        shared = _env(pod, "AGENTHUB_REDIS_ENABLED") == "true"
        try:
            replica = await self._serve(name, shared)
        except Exception as exc:  # noqa: BLE001 - e.g. the database is down: the Go API exits and restarts
            log.warning("API replica %s failed to start (%s): retrying", name, exc)
            self._retries[uid] = asyncio.create_task(self._retry(uid, name, shared))
            return None
        self._up(uid, replica)
        return None

    def _up(self, uid: str, replica: Replica) -> None:
        self.replicas[uid] = replica
        log.info("API replica %s serving on 127.0.0.1:%s", replica.pod, replica.port)
        self._publish()

    async def _retry(self, uid: str, name: str, shared: bool) -> None:
        """The container's restarts with the kubelet's back-off (1, 2, 4, 5, 5… s) until the app starts."""
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                replica = await self._serve(name, shared)
            except Exception as exc:  # noqa: BLE001
                log.info("API replica %s still failing (%s)", name, exc)
                delay = min(5.0, delay * 2)
                continue
            self._retries.pop(uid, None)
            self._up(uid, replica)
            return

    async def stop(self, pod: Obj, grace: float) -> None:
        retry = self._retries.pop(pod["metadata"]["uid"], None)
        if retry is not None:
            retry.cancel()
        if self.detached:
            return
        replica = self.replicas.pop(pod["metadata"]["uid"], None)
        if replica is None:
            return
        self._publish()  # out of the Service's endpoints first, as the endpoints controller does
        await replica.runner.cleanup()  # agents' sockets close: they reconnect through the Service
        log.info("API replica %s stopped", replica.pod)

    def ready(self, pod: Obj) -> bool:
        return pod["metadata"]["uid"] in self.replicas

    async def wait_serving(self, count: int, timeout: float) -> None:
        """Until `count` replicas serve (the sandbox waits for them before starting agents)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.replicas) < count:
            self.changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.replicas)} of {count} API replica(s) serving")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)

    async def restart_all(self) -> int:
        """Restart every replica in place (new app, same pod); returns how many."""
        for uid, old in list(self.replicas.items()):
            del self.replicas[uid]
            self._publish()  # out of the Service first, so its agents reconnect to a replica that serves
            await old.runner.cleanup()
            self.replicas[uid] = await self._serve(old.pod, old.shared_routing)
            self._publish()
        return len(self.replicas)

    async def stop_all(self) -> None:
        self.detached = True
        for retry in self._retries.values():
            retry.cancel()
        replicas, self.replicas = list(self.replicas.values()), {}
        self._publish()
        for replica in replicas:
            with contextlib.suppress(Exception):
                await replica.runner.cleanup()

    def apps(self) -> List[web.Application]:
        return [r.runner.app for r in self.replicas.values() if r.runner.app is not None]


class PostgresPod(Component):
    """`streamspace-postgres-0`: the embedded server (sandbox/postgres.py)."""

    def __init__(self, postgres: Any) -> None:
        self.postgres = postgres
        self.detached = False

    async def start(self, pod: Obj) -> Optional[Obj]:
        if self.postgres.pid is None:
            await asyncio.to_thread(self.postgres.start)
            log.info("PostgreSQL started by pod %s", pod["metadata"]["name"])
        return None

    async def stop(self, pod: Obj, grace: float) -> None:
        if self.detached:
            return
        await asyncio.to_thread(self.postgres.stop, max(grace, 2.0))
        log.info("PostgreSQL stopped with pod %s", pod["metadata"]["name"])

    def ready(self, pod: Obj) -> bool:
        return self.postgres.pid is not None
