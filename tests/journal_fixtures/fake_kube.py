"""The smallest Kubernetes API that the run lock needs: ConfigMaps (create/get/replace/delete) with
resourceVersion conflicts, served by aiohttp from a thread. Used only when the sandbox's KubeEmulator
is not available, so the lock logic is still exercised with the real `kubernetes` client."""

import asyncio
import itertools
import threading
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from aiohttp import web

_PREFIX = "/api/v1/namespaces/{ns}/configmaps"


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}  # fmt: skip
    return web.json_response(body, status=code)


class FakeKube:
    """`start()` serves on 127.0.0.1; `objects[(ns, name)]` holds the ConfigMaps as dicts."""

    def __init__(self) -> None:
        self.objects: Dict[Tuple[str, str], Dict[str, Any]] = {}
        self.url = ""
        self._rv = itertools.count(1)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._ready = threading.Event()

    def _stamp(self, obj: Dict[str, Any], ns: str) -> Dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = ns
        meta["resourceVersion"] = str(next(self._rv))
        meta.setdefault("uid", f"uid-{meta['resourceVersion']}")
        obj.setdefault("apiVersion", "v1")
        obj.setdefault("kind", "ConfigMap")
        return obj

    async def _create(self, request: web.Request) -> web.Response:
        ns, obj = request.match_info["ns"], await request.json()
        key = (ns, obj["metadata"]["name"])
        if key in self.objects:
            return _status(409, "AlreadyExists", f'configmaps "{key[1]}" already exists')
        obj["metadata"].pop("resourceVersion", None)
        self.objects[key] = self._stamp(obj, ns)
        return web.json_response(self.objects[key], status=201)

    async def _get(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        if key not in self.objects:
            return _status(404, "NotFound", f'configmaps "{key[1]}" not found')
        return web.json_response(self.objects[key])

    async def _replace(self, request: web.Request) -> web.Response:
        key, obj = (request.match_info["ns"], request.match_info["name"]), await request.json()
        if key not in self.objects:
            return _status(404, "NotFound", f'configmaps "{key[1]}" not found')
        wanted = (obj.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != self.objects[key]["metadata"]["resourceVersion"]:
            return _status(
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version",
            )
        self.objects[key] = self._stamp(obj, key[0])
        return web.json_response(self.objects[key])

    async def _delete(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        if key not in self.objects:
            return _status(404, "NotFound", f'configmaps "{key[1]}" not found')
        body = await request.json() if request.can_read_body else {}
        wanted = ((body or {}).get("preconditions") or {}).get("resourceVersion")
        if wanted and wanted != self.objects[key]["metadata"]["resourceVersion"]:
            return _status(409, "Conflict", "precondition failed: resourceVersion")
        self.objects.pop(key)
        return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        app = web.Application()
        base = _PREFIX.format(ns="{ns}")
        app.router.add_post(base, self._create)
        app.router.add_get(base + "/{name}", self._get)
        app.router.add_put(base + "/{name}", self._replace)
        app.router.add_delete(base + "/{name}", self._delete)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> "FakeKube":
        threading.Thread(target=self._serve, name="fake-kube", daemon=True).start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)


def write_kubeconfig(path: Path, url: str, namespace: str = "streamspace") -> Path:
    """A kubeconfig pointing at `url` with a dummy token."""
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
        f"clusters:\n- name: fake\n  cluster:\n    server: {url}\n"
        f"contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\n"
        "users:\n- name: fake\n  user:\n    token: fake-token\n"
    )
    return path
