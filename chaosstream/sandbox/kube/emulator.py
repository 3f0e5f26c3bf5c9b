"""``KubeEmulator``: the store, controllers, kubelet, container runtime and HTTP server put together."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import logging
import threading
from typing import Any, Callable, Coroutine, TypeVar

from aiohttp import web

from .controllers import ControllerManager
from .defaults import default_pod_spec
from .errors import bad_request, invalid
from .events import EventRecorder
from .kubelet import Kubelet, node_object
from .rbac import Rbac
from .resources import NAMESPACE, POD, ResourceType, lookup_kind
from .runtime import ContainerRuntime
from .selectors import parse_label_selector
from .server import Api
from .store import Store, clone

Obj = dict[str, Any]
T = TypeVar("T")
log = logging.getLogger(__name__)


class KubeEmulator:
    """A Kubernetes API server emulator on real HTTP, for the python client, chaosk8s and kubectl.

    All state lives on one asyncio loop (``start()`` in a running loop, or ``start_in_thread()``).  The
    public helpers may be called from that loop directly or from another thread (they hop onto the loop
    and wait).
    """

    def __init__(
        self,
        runtime: ContainerRuntime | None = None,
        hosts: list[str] | None = None,
        port: int = 0,
        tls: bool = False,
    ) -> None:
        """``runtime`` runs the pods' containers (default: simulated ones). With ``tls`` the API is also
        served over HTTPS on 127.0.0.1:``tls_port`` with a self-signed certificate (``tls_ca``), which is
        what in-cluster clients (KUBERNETES_SERVICE_HOST/PORT + the ServiceAccount's ca.crt) need."""
        self.tls = tls
        self.tls_port = 0
        self.tls_ca: str | None = None
        self._tls_dir: str | None = None
        self.runtime: ContainerRuntime = runtime or ContainerRuntime()
        self.runtime.emulator = self
        self.hosts = list(hosts or ["127.0.0.1"])
        self.port = port
        self.store = Store()
        self.rbac = Rbac(self.store)
        self.recorder = EventRecorder(self.store)
        self.kubelet = Kubelet(self)
        self.controllers = ControllerManager(self)
        self.store.listeners.append(self.controllers.on_change)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.store.create(NAMESPACE, None, {"metadata": {"name": "default"}})
        self.store.create(NAMESPACE, None, {"metadata": {"name": "kube-system"}})
        self.store.create(lookup_kind("v1", "Node"), None, node_object())

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the first host."""
        host = self.hosts[0]
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start serving on the running loop (binds every host; port 0 picks a free port)."""
        self._loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(
            Api(self).app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        for host in self.hosts:
            site = web.TCPSite(self._runner, host, self.port, reuse_address=True)
            await site.start()
            if self.port == 0:
                server = site._server
                assert server is not None
                self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if self.tls:
            await self._start_tls()
        self.controllers.start()
        for entry in list(self.store.iter(POD)):
            self.controllers.enqueue("pod", entry.obj["metadata"]["namespace"], entry.obj["metadata"]["name"])

    async def _start_tls(self) -> None:
        import os
        import ssl
        import subprocess
        import tempfile

        if self._tls_dir is None:
            self._tls_dir = tempfile.mkdtemp(prefix="kube-emulator-tls-")
            cert, key = os.path.join(self._tls_dir, "ca.crt"), os.path.join(self._tls_dir, "tls.key")
            await asyncio.to_thread(
                subprocess.run,
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "7", "-subj",
                 "/CN=kube-emulator", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc",
                 "-keyout", key, "-out", cert],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            self.tls_ca = cert
        assert self._tls_dir is not None and self._runner is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(os.path.join(self._tls_dir, "ca.crt"), os.path.join(self._tls_dir, "tls.key"))
        site = web.TCPSite(self._runner, "127.0.0.1", self.tls_port, ssl_context=context, reuse_address=True)
        await site.start()
        if self.tls_port == 0:
            server = site._server
            assert server is not None
            self.tls_port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self, grace_period: float = 0.0) -> None:
        """Stop controllers, stop all pods through ``runtime.stop_pod`` and close the server."""
        await self.controllers.stop()
        await self.kubelet.stop_all(grace_period)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.store.close_watchers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def restart_api_server(self) -> None:
        """Restart the HTTP server and the controller loop on the same port, as a kube-apiserver restart.

        Watches and exec streams are cut and connections are refused meanwhile; the object store (what etcd
        keeps) and the running pods (the kubelet and its containers) are kept. Every pod is re-enqueued.
        """
        await self.controllers.stop()
        self.store.close_watchers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.start()

    def start_in_thread(self) -> KubeEmulator:
        """Run the emulator on its own loop in a daemon thread (for synchronous callers)."""
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # report start-up failures to the caller
                ready.set_exception(exc)
                return
            ready.set_result(None)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="kube-emulator", daemon=True)
        self._thread.start()
        ready.result(timeout=30)
        return self

    def stop_in_thread(self) -> None:
        """Stop a ``start_in_thread`` emulator and join its thread."""
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start a background task owned by the emulator (cancelled on ``stop``)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("emulator task failed", exc_info=task.exception())

    def _call(self, fn: Callable[[], T]) -> T:
        # From a foreign thread, run ``fn`` on the emulator loop and wait; otherwise call it directly.
        loop = self._loop
        if loop is None or not loop.is_running() or self._on_loop():
            return fn()

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=30)

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    # ---- public helpers ----------------------------------------------------------------------
    def create_object(self, obj: Obj, rtype: ResourceType | None = None, namespace: str | None = None) -> Obj:
        """Create any served object (namespaces, deployments, pods...); returns a copy of what was stored."""

        def run() -> Obj:
            rt = rtype or self._rtype_of(obj)
            return self.store.create(rt, namespace, obj)

        return clone(self._call(run))

    def get_object(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj | None:
        """A copy of one object, or ``None``."""
        rtype = lookup_kind(api_version, kind)
        return self._call(lambda: _maybe_clone(self.store.get(rtype, namespace, name)))

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[Obj]:
        """Copies of the matching objects (``namespace=None``: all namespaces)."""
        rtype = lookup_kind(api_version, kind)
        reqs = parse_label_selector(label_selector)
        return self._call(lambda: [clone(e.obj) for e in self.store.list(rtype, namespace, reqs)])

    def container_exited(self, namespace: str, pod: str, container: str, exit_code: int) -> None:
        """A container's process died by itself: restart per ``restartPolicy`` or mark the pod finished."""
        self._call(lambda: self.kubelet.container_exited(namespace, pod, container, exit_code))

    def record_event(self, obj: Obj, reason: str, message: str, type: str = "Normal") -> None:
        """Record a core/v1 Event about ``obj`` (repeats bump ``count``)."""
        self._call(lambda: self.recorder.record(obj, reason, message, type))

    def update_object(self, obj: Obj, subresource: str | None = None) -> Obj:
        """Replace an object (``subresource="status"`` for status only); the resourceVersion is checked."""

        def run() -> Obj:
            rt = self._rtype_of(obj)
            meta = obj.get("metadata") or {}
            return self.store.update(rt, meta.get("namespace"), meta.get("name", ""), clone(obj), subresource)

        return clone(self._call(run))

    def delete_object(
        self, api_version: str, kind: str, namespace: str | None, name: str, grace_period: int | None = None
    ) -> None:
        """Delete like the API does (graceful for pods, finalizers respected)."""
        rtype = lookup_kind(api_version, kind)
        self._call(lambda: self.delete(rtype, namespace, name, grace_period))

    # ---- internals shared with the HTTP layer and controllers --------------------------------
    @staticmethod
    def _rtype_of(obj: Obj) -> ResourceType:
        try:
            return lookup_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        except KeyError:
            raise bad_request(
                f"no kind {obj.get('kind')!r} is registered for version {obj.get('apiVersion')!r}"
            ) from None

    def delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        grace_period: int | None = None,
        propagation: str | None = None,
    ) -> tuple[Obj, bool]:
        """Delete with Kubernetes semantics; returns ``(object, gone_now)``.

        Pods get a deletionTimestamp and stay Terminating until the kubelet stopped them
        (``grace_period`` from the request, else ``terminationGracePeriodSeconds``, else 30; 0 forces an
        immediate removal).  Objects with finalizers get a deletionTimestamp and stay until those are gone.
        """
        store = self.store
        obj = store.require(rtype, namespace, name).obj
        meta = obj["metadata"]
        if propagation == "Orphan":
            for dep in store.owned_by(meta["uid"]):
                self._orphan(dep, meta["uid"])
        finalizers = meta.get("finalizers") or []
        if rtype is POD:
            grace = grace_period
            if grace is None:
                grace = obj["spec"].get("terminationGracePeriodSeconds", 30)
            if grace < 0:
                raise invalid("Pod", "", name, "gracePeriodSeconds", "must be >= 0")
            if not obj["spec"].get("nodeName") or obj["status"].get("phase") in ("Succeeded", "Failed"):
                grace = 0  # nothing runs on the node: the apiserver deletes such pods at once
            if grace == 0 and not finalizers:
                return store.remove(rtype, namespace, name), True
            if meta.get("deletionTimestamp"):
                current = int(meta.get("deletionGracePeriodSeconds") or 0)
                if grace >= current:
                    return obj, False
            return self._mark_deleting(rtype, obj, int(grace)), False
        if rtype is NAMESPACE:
            if meta.get("deletionTimestamp"):
                return obj, False
            new = self._mark_deleting(rtype, obj, 0, put=False)
            new["status"] = {"phase": "Terminating"}
            return store.put_system(rtype, new), False
        if finalizers:
            if meta.get("deletionTimestamp"):
                return obj, False
            return self._mark_deleting(rtype, obj, 0), False
        return store.remove(rtype, namespace, name), True

    def _mark_deleting(self, rtype: ResourceType, obj: Obj, grace: int, put: bool = True) -> Obj:
        new = clone(obj)
        stamp = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=grace)
        new["metadata"]["deletionTimestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        new["metadata"]["deletionGracePeriodSeconds"] = grace
        return self.store.put_system(rtype, new) if put else new

    def _orphan(self, dep: Obj, owner_uid: str) -> None:
        new = clone(dep)
        refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        self.store.put_system(self._rtype_of(dep), new)

    def set_ephemeral_containers(self, namespace: str, name: str, new_pod: Obj) -> Obj:
        """The ``pods/ephemeralcontainers`` write: only additions are allowed, as in Kubernetes."""
        pod = self.store.require(POD, namespace, name).obj
        want_rv = (new_pod.get("metadata") or {}).get("resourceVersion")
        if want_rv and want_rv != pod["metadata"]["resourceVersion"]:
            from .errors import conflict

            raise conflict("pods", "", name)
        wanted = clone(((new_pod.get("spec") or {}).get("ephemeralContainers")) or [])
        current = pod["spec"].get("ephemeralContainers") or []
        by_name = {c.get("name"): c for c in wanted}
        probe = {"ephemeralContainers": wanted}
        default_pod_spec(probe)
        for c in current:
            if c["name"] not in by_name:
                raise invalid(
                    "Pod",
                    "",
                    name,
                    "spec.ephemeralContainers",
                    "Forbidden: existing ephemeral containers may not be removed",
                )
            if by_name[c["name"]] != c:
                raise invalid(
                    "Pod",
                    "",
                    name,
                    f"spec.ephemeralContainers[{c['name']}]",
                    "Forbidden: existing ephemeral containers may not be changed",
                )
        taken = {c["name"] for c in pod["spec"].get("containers") or []}
        taken |= {c["name"] for c in pod["spec"].get("initContainers") or []}
        for i, c in enumerate(wanted):
            if not c.get("name") or not c.get("image"):
                raise invalid(
                    "Pod", "", name, f"spec.ephemeralContainers[{i}]", "Required value: name and image"
                )
            if c["name"] in taken:
                raise invalid(
                    "Pod", "", name, f"spec.ephemeralContainers[{i}].name", f"Duplicate value: {c['name']!r}"
                )
        new = clone(pod)
        new["spec"]["ephemeralContainers"] = wanted
        if not wanted:
            new["spec"].pop("ephemeralContainers")
        return self.store.put_system(POD, new)


def _maybe_clone(obj: Obj | None) -> Obj | None:
    return clone(obj) if obj is not None else None


__all__ = ["KubeEmulator"]
