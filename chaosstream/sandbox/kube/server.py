"""aiohttp routes: URL parsing, verbs → store operations, Status error bodies, list/watch encoding."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from . import discovery, tables
from .errors import ApiError, bad_request, invalid, method_not_allowed, status_body, unsupported_media_type
from .exec import handle_exec
from .kubelet import is_ready
from .patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)
from .portforward import handle_portforward
from .rbac import SA_TOKEN_TYPE, Attributes
from .resources import BY_GROUP_VERSION, POD, ResourceType, groups
from .selectors import labels_match, parse_field_selector, parse_label_selector, selector_from_match
from .store import Entry, Watcher, clone, dumps
from .tables import wants_table
from .workloads import scale_object

if TYPE_CHECKING:
    from .cluster import Cluster

Obj = dict[str, Any]
JSON = "application/json"
DEFAULT_WATCH_TIMEOUT = 1800.0
WHO = web.RequestKey("who", object)


@dataclass
class Target:
    """What a resource URL points at."""

    rtype: ResourceType
    namespace: str | None
    name: str | None
    sub: str | None
    watch: bool


def json_response(body: Obj | bytes, status: int = 200) -> web.Response:
    """A JSON response from a dict or pre-encoded bytes."""
    raw = body if isinstance(body, bytes) else dumps(body)
    return web.Response(body=raw, status=status, content_type=JSON)


def error_response(err: ApiError) -> web.Response:
    """The Status body of an ``ApiError``."""
    return json_response(err.body(), err.code)


def _not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


class Api:
    """Request handlers bound to one emulator."""

    def __init__(self, emu: Cluster) -> None:
        self.emu = emu
        self.store = emu.store

    def app(self) -> web.Application:
        """The aiohttp application (one catch-all route; parsing is done here, O(1) per request)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Route one request, turning ``ApiError`` into a Status response."""
        try:
            return await self._dispatch(request)
        except ApiError as err:
            return error_response(err)

    # ---- routing -----------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = path.strip("/").split("/") if path != "/" else []
        who = self.emu.rbac.identify(request.headers.get("Authorization"))
        request[WHO] = who
        if parts == ["debug", "rbac-trace"]:
            if who != "admin":
                raise ApiError(403, "Forbidden", "the RBAC trace is for the sandbox admin only")
            return json_response(self.emu.rbac.trace_json())
        if not parts:
            return json_response({"paths": ["/api", "/api/v1", "/apis", "/version", "/openapi/v2"]})
        head = parts[0]
        if head == "version" and len(parts) == 1:
            return json_response(discovery.VERSION)
        if head in ("healthz", "livez", "readyz"):
            return web.Response(text="ok")
        if head == "openapi":
            return self._openapi(request, parts[1:])
        if head == "api":
            if len(parts) == 1:
                return json_response(discovery.core_versions(request.host))
            api_version, rest = parts[1], parts[2:]
        elif head == "apis":
            if len(parts) == 1:
                return json_response(discovery.group_list())
            if len(parts) == 2:
                versions = groups().get(parts[1])
                if versions is None:
                    raise _not_found_path()
                return json_response(discovery.api_group(parts[1], versions))
            api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            raise _not_found_path()
        served = BY_GROUP_VERSION.get(api_version)
        if served is None:
            raise _not_found_path()
        if not rest:
            return json_response(discovery.resource_list(api_version) or {})
        return await self._resource(request, self._target(served, rest))

    @staticmethod
    def _openapi(request: web.Request, rest: list[str]) -> web.Response:
        if rest == ["v2"] and "json" in request.headers.get("Accept", "application/json"):
            return json_response(discovery.openapi_v2())  # protobuf-only clients get the 404 below
        if rest == ["v3"]:
            return json_response(discovery.openapi_v3_root())
        if rest[:1] == ["v3"] and len(rest) in (3, 4):
            api_version = rest[2] if rest[1] == "api" else "/".join(rest[2:])
            doc = discovery.openapi_v3_group_version(api_version)
            if doc is not None:
                return json_response(doc)
        raise _not_found_path()

    @staticmethod
    def _target(served: dict[str, ResourceType], rest: list[str]) -> Target:
        watch = False
        if rest[0] == "watch":  # legacy /api/v1/watch/... paths
            watch, rest = True, rest[1:]
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in served and served[rest[2]].namespaced:
            if len(rest) > 5:
                raise _not_found_path()
            return Target(
                served[rest[2]],
                rest[1],
                rest[3] if len(rest) > 3 else None,
                rest[4] if len(rest) > 4 else None,
                watch,
            )
        if not rest or rest[0] not in served or len(rest) > 3:
            raise _not_found_path()
        rtype = served[rest[0]]
        name = rest[1] if len(rest) > 1 else None
        if rtype.namespaced and name is not None:
            raise _not_found_path()
        return Target(rtype, None, name, rest[2] if len(rest) > 2 else None, watch)

    @staticmethod
    def _attributes(request: web.Request, t: Target) -> list[Attributes]:
        """The authorizer attributes of a request (a WebSocket exec/portforward is a GET: get and create)."""
        m = request.method
        name = t.name or ""
        if t.name is None:
            if m == "GET":
                watch = t.watch or request.query.get("watch", "").lower() in ("1", "true")
                verbs = ["watch" if watch else "list"]
                for part in request.query.get("fieldSelector", "").split(","):
                    key, _, value = part.partition("=")
                    if key.strip() == "metadata.name" and value and not value.startswith("="):
                        name = value.strip()
            else:
                verbs = [{"POST": "create", "DELETE": "deletecollection"}.get(m, m.lower())]
        elif t.sub in ("exec", "attach", "portforward") and m == "GET":
            # a WebSocket upgrade is a GET: `get`, plus `create` since 1.35 (KEP-4006,
            # AuthorizePodWebsocketUpgradeCreatePermission covers exec, attach and portforward)
            verbs = ["get", "create"]
        elif t.sub in ("exec", "eviction", "token", "attach", "portforward") or m == "POST":
            verbs = ["create"]
        else:
            verbs = [{"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(m, m.lower())]
        g = t.rtype.group
        return [Attributes(v, g, t.rtype.plural, t.sub or "", t.namespace or "", name) for v in verbs]

    async def _resource(self, request: web.Request, t: Target) -> web.StreamResponse:
        m = request.method
        who = request.get(WHO, "admin")
        self.emu.rbac.authorize(who, self._attributes(request, t))
        if t.rtype.plural == "selfsubjectaccessreviews":
            if m != "POST" or t.name is not None:
                raise method_not_allowed(f"{m} is not supported on selfsubjectaccessreviews")
            body = await self._body(request)
            return json_response(
                self.emu.rbac.access_review(who, body if isinstance(body, dict) else {}), 201
            )
        if t.sub == "token" and t.rtype.plural == "serviceaccounts":
            if m != "POST":
                raise method_not_allowed(f"{m} is not supported on serviceaccounts/token")
            self.store.require(t.rtype, t.namespace, t.name or "")
            try:  # kubectl sends protobuf here; the spec's defaults are all the sandbox needs then
                body = await self._body(request) or {}
            except ApiError:
                body = {}
            token = self.emu.rbac.mint(t.namespace or "", t.name or "")
            spec = dict(body.get("spec") or {})
            seconds = int(spec.get("expirationSeconds") or 3600)
            from datetime import UTC, datetime, timedelta

            expires = (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
            return json_response(
                {
                    "kind": "TokenRequest",
                    "apiVersion": "authentication.k8s.io/v1",
                    "metadata": {"name": t.name, "namespace": t.namespace},
                    "spec": {**spec, "expirationSeconds": seconds},
                    "status": {"token": token, "expirationTimestamp": expires},
                },
                201,
            )
        if t.name is None:
            if m == "GET":
                watch = t.watch or request.query.get("watch", "").lower() in ("1", "true")
                return await (self.watch(request, t) if watch else self.list(request, t))
            if m == "POST":
                return await self.create(request, t)
            if m == "DELETE":
                return await self.delete_collection(request, t)
            raise method_not_allowed(f"{m} is not supported on {t.rtype.plural}")
        if t.sub is None:
            handler = {"GET": self.read, "PUT": self.replace, "PATCH": self.patch, "DELETE": self.delete}.get(
                m
            )
            if handler is None:
                raise method_not_allowed(f"{m} is not supported on {t.rtype.plural}/{t.name}")
            return await handler(request, t)
        if t.sub not in t.rtype.subresources:
            raise _not_found_path()
        if t.sub == "exec":
            if m not in ("GET", "POST"):
                raise method_not_allowed(f"{m} is not supported on pods/exec")
            return await handle_exec(self.emu, request, t.namespace or "", t.name)
        if t.sub == "portforward" and t.rtype.plural == "pods":
            if m not in ("GET", "POST"):
                raise method_not_allowed(f"{m} is not supported on pods/portforward")
            return await handle_portforward(self.emu, request, t.namespace or "", t.name)
        if t.sub == "eviction":
            if m != "POST":
                raise method_not_allowed(f"{m} is not supported on pods/eviction")
            return await self.evict(request, t)
        if t.sub == "log" and m == "GET":
            return await self.log(request, t)
        if t.sub in ("status", "ephemeralcontainers", "scale"):
            handler = {"GET": self.read, "PUT": self.replace, "PATCH": self.patch}.get(m)
            if handler is None:
                raise method_not_allowed(f"{m} is not supported on {t.rtype.plural}/{t.sub}")
            return await handler(request, t)
        raise method_not_allowed(f"{m} is not supported on {t.rtype.plural}/{t.sub}")

    # ---- helpers -----------------------------------------------------------------------------
    @staticmethod
    async def _body(request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        ctype = request.content_type
        try:
            if "yaml" in ctype:
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the body of the request could not be decoded: {exc}") from None

    def _selectors(self, request: web.Request, rtype: ResourceType) -> tuple[Any, Any]:
        q = request.query
        return (
            parse_label_selector(q.get("labelSelector")),
            parse_field_selector(q.get("fieldSelector"), rtype.fields),
        )

    def _entry_response(self, rtype: ResourceType, obj: Obj, status: int = 200) -> web.Response:
        meta = obj["metadata"]
        entry = self.store.entry(rtype, meta.get("namespace"), meta["name"])
        if entry is not None and entry.obj is obj:
            return json_response(entry.raw, status)  # cached encoding, shared with later lists
        return json_response(obj, status)

    # ---- verbs -------------------------------------------------------------------------------
    async def list(self, request: web.Request, t: Target) -> web.Response:
        """LIST with selectors and limit/continue."""
        labels, fields = self._selectors(request, t.rtype)
        items = self.store.list(t.rtype, t.namespace, labels, fields)
        meta: Obj = {"resourceVersion": self.store.resource_version}
        cont = request.query.get("continue")
        if cont:
            try:
                start = tuple(json.loads(base64.urlsafe_b64decode(cont.encode())))
            except ValueError:
                raise bad_request("invalid continue token") from None
            items = [
                e
                for e in items
                if (e.obj["metadata"].get("namespace", ""), e.obj["metadata"]["name"]) > start
            ]
        limit = int(request.query.get("limit") or 0)
        if limit and len(items) > limit:
            last = items[limit - 1].obj["metadata"]
            token = json.dumps([last.get("namespace", ""), last["name"]]).encode()
            meta["continue"] = base64.urlsafe_b64encode(token).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        if wants_table(request.headers.get("Accept", "")):
            return json_response(
                tables.table(t.rtype, [e.obj for e in items], meta["resourceVersion"], meta.get("continue"))
            )
        head = dumps({"kind": t.rtype.list_kind, "apiVersion": t.rtype.api_version, "metadata": meta})
        body = head[:-1] + b',"items":[' + b",".join(e.raw for e in items) + b"]}"
        return json_response(body)

    async def watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        """WATCH: newline-delimited events until ``timeoutSeconds``, shutdown or client disconnect."""
        labels, fields = self._selectors(request, t.rtype)
        if t.name is not None:
            fields = fields + parse_field_selector(f"metadata.name={t.name}", ())
        watcher = Watcher(t.rtype, t.namespace, labels, fields)
        error: Obj | None = None
        try:
            self.store.watch(watcher, request.query.get("resourceVersion"))
        except ApiError as err:
            if err.code != 410:
                raise
            error = err.body()
        timeout = float(request.query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        resp = web.StreamResponse(headers={"Content-Type": JSON})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            if error is not None:
                await resp.write(dumps({"type": "ERROR", "object": error}) + b"\n")
                return resp
            await resp.write(b"")
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), min(remaining, 5.0))
                except TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        break  # the client went away
                    continue
                if item is None:
                    break
                chunks = []
                while item is not None:
                    chunks.append(b'{"type":"' + item[0].encode() + b'","object":' + item[1].raw + b"}\n")
                    if watcher.queue.empty():
                        break
                    item = watcher.queue.get_nowait()
                await resp.write(b"".join(chunks))
                if item is None:
                    break
        except ConnectionResetError:  # the client went away mid-write
            return resp
        finally:
            self.store.unwatch(watcher)
        await resp.write_eof()
        return resp

    async def read(self, request: web.Request, t: Target) -> web.Response:
        """GET one object (or its status / ephemeralcontainers / scale view)."""
        assert t.name is not None
        entry = self.store.require(t.rtype, t.namespace, t.name)
        if t.sub == "scale":
            return json_response(scale_object(entry.obj))
        if t.sub is None and wants_table(request.headers.get("Accept", "")):
            return json_response(tables.table(t.rtype, [entry.obj], entry.obj["metadata"]["resourceVersion"]))
        return json_response(entry.raw)

    async def create(self, request: web.Request, t: Target) -> web.Response:
        """POST: create, 201 with the stored object."""
        body = await self._body(request)
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        kind = body.get("kind")
        if kind and kind != t.rtype.kind:
            raise bad_request(
                f"the API version in the data ({body.get('apiVersion')}) does not match the expected "
                f"API version ({t.rtype.api_version}) or kind {kind!r} is not {t.rtype.kind!r}"
            )
        if t.rtype.namespaced and t.namespace is None:
            raise method_not_allowed(f"create of {t.rtype.plural} needs a namespace in the URL")
        if t.rtype.plural == "secrets" and body.get("type") == SA_TOKEN_TYPE:
            self._fill_token_secret(body, t.namespace or "")
        obj = self.emu.create_object(body, t.rtype, t.namespace)
        return self._entry_response(t.rtype, obj, 201)

    def _fill_token_secret(self, body: Obj, namespace: str) -> None:
        """A `kubernetes.io/service-account-token` Secret gets a token for its ServiceAccount (the token
        controller's job in a real cluster)."""
        sa = ((body.get("metadata") or {}).get("annotations") or {}).get("kubernetes.io/service-account.name")
        if not sa:
            raise invalid(
                "Secret",
                "",
                (body.get("metadata") or {}).get("name", ""),
                "metadata.annotations[kubernetes.io/service-account.name]",
                "Required value",
            )
        token = self.emu.rbac.mint(namespace, sa)
        data = dict(body.get("data") or {})
        data["token"] = base64.b64encode(token.encode()).decode()
        data["namespace"] = base64.b64encode(namespace.encode()).decode()
        body["data"] = data

    async def replace(self, request: web.Request, t: Target) -> web.Response:
        """PUT: full replacement (or of the status / ephemeral containers / scale)."""
        assert t.name is not None
        body = await self._body(request)
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        return self._write(t, body)

    async def patch(self, request: web.Request, t: Target) -> web.Response:
        """PATCH with json-patch, merge-patch, strategic-merge-patch or apply-patch."""
        assert t.name is not None
        ctype = request.content_type
        accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH] + ([] if t.rtype.crd else [STRATEGIC_PATCH])
        if ctype not in accepted:
            raise unsupported_media_type(ctype, accepted)
        body = await self._body(request)
        if ctype == APPLY_PATCH:
            if not request.query.get("fieldManager"):
                raise bad_request("PATCH /apply requires fieldManager to be set")
            if self.store.get(t.rtype, t.namespace, t.name) is None and t.sub is None:
                if not isinstance(body, dict):
                    raise bad_request("the body of the request must be an object")
                obj = self.emu.create_object(body, t.rtype, t.namespace)
                return self._entry_response(t.rtype, obj, 201)
        current = self.store.require(t.rtype, t.namespace, t.name).obj
        base = scale_object(current) if t.sub == "scale" else clone(current)
        if ctype == JSON_PATCH:
            new = apply_json_patch(base, body)
        elif ctype == MERGE_PATCH or (ctype == APPLY_PATCH and t.rtype.crd):
            new = apply_merge_patch(base, body)
        else:
            new = apply_strategic_merge_patch(base, body)
        if not isinstance(new, dict):
            raise bad_request("the patched object is not an object")
        return self._write(t, new)

    def _write(self, t: Target, new: Obj) -> web.Response:
        assert t.name is not None
        rtype, ns, name = t.rtype, t.namespace, t.name
        if t.sub == "scale":
            current = self.store.require(rtype, ns, name).obj
            want_rv = (new.get("metadata") or {}).get("resourceVersion")
            replicas = (new.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise invalid("Scale", "autoscaling", name, "spec.replicas", "Invalid value: must be >= 0")
            updated = clone(current)
            updated["spec"]["replicas"] = replicas
            updated["metadata"]["resourceVersion"] = want_rv or current["metadata"]["resourceVersion"]
            return json_response(scale_object(self.store.update(rtype, ns, name, updated)))
        if t.sub == "ephemeralcontainers":
            return self._entry_response(rtype, self.emu.set_ephemeral_containers(ns or "", name, new))
        obj = self.store.update(rtype, ns, name, new, t.sub)
        return self._entry_response(rtype, obj)

    @staticmethod
    async def _delete_options(request: web.Request) -> Obj:
        opts: Obj = {}
        raw = await request.read()
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                raise bad_request("the body of the request could not be decoded as DeleteOptions") from None
            if isinstance(body, dict):
                opts.update(body)
        q = request.query
        if "gracePeriodSeconds" in q:
            opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        if "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        return opts

    async def delete(self, request: web.Request, t: Target) -> web.Response:
        """DELETE one object: pods and services answer with the object, others with a Status if gone."""
        assert t.name is not None
        opts = await self._delete_options(request)
        pre = opts.get("preconditions") or {}
        current = self.store.require(t.rtype, t.namespace, t.name).obj
        if pre.get("uid") and pre["uid"] != current["metadata"]["uid"]:
            raise ApiError(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in "
                f"object meta: {current['metadata']['uid']}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                "Precondition failed: ResourceVersion in precondition: "
                f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                f"{current['metadata']['resourceVersion']}",
            )
        obj, gone = self.emu.delete(
            t.rtype, t.namespace, t.name, opts.get("gracePeriodSeconds"), opts.get("propagationPolicy")
        )
        if gone and t.rtype.plural not in ("pods", "services"):
            details = {
                "name": t.name,
                "group": t.rtype.group,
                "kind": t.rtype.plural,
                "uid": obj["metadata"]["uid"],
            }
            return json_response(status_body("Success", details=details))
        return json_response(obj, 200)

    async def delete_collection(self, request: web.Request, t: Target) -> web.Response:
        """DELETE on a collection (with selectors)."""
        if "deletecollection" not in t.rtype.verbs:
            raise method_not_allowed(f"deletecollection is not supported on {t.rtype.plural}")
        labels, fields = self._selectors(request, t.rtype)
        opts = await self._delete_options(request)
        for entry in self.store.list(t.rtype, t.namespace, labels, fields):
            meta = entry.obj["metadata"]
            if self.store.entry(t.rtype, meta.get("namespace"), meta["name"]) is not None:
                self.emu.delete(
                    t.rtype,
                    meta.get("namespace"),
                    meta["name"],
                    opts.get("gracePeriodSeconds"),
                    opts.get("propagationPolicy"),
                )
        return json_response(status_body("Success"))

    async def evict(self, request: web.Request, t: Target) -> web.Response:
        """POST pods/{name}/eviction: honours PodDisruptionBudgets, then deletes the pod gracefully."""
        assert t.name is not None
        body = await self._body(request) or {}
        pod = self.store.require(POD, t.namespace, t.name).obj
        if is_ready(pod) and not pod["metadata"].get("deletionTimestamp"):
            self._check_disruption_budgets(pod)
        opts = body.get("deleteOptions") or {}
        self.emu.delete(POD, t.namespace, t.name, opts.get("gracePeriodSeconds"))
        return json_response(status_body("Success", code=201), 201)

    def _check_disruption_budgets(self, pod: Obj) -> None:
        from .resources import BY_KEY

        pdb_type = BY_KEY["policy/poddisruptionbudgets"]
        ns = pod["metadata"]["namespace"]
        for entry in self.store.iter(pdb_type, ns):
            pdb = entry.obj
            sel = selector_from_match((pdb.get("spec") or {}).get("selector"))
            if not labels_match(sel, pod["metadata"].get("labels")):
                continue
            matching = [
                e.obj
                for e in self.store.iter(POD, ns)
                if labels_match(sel, e.obj["metadata"].get("labels"))
                and not e.obj["metadata"].get("deletionTimestamp")
            ]
            healthy = sum(1 for p in matching if is_ready(p))
            spec = pdb.get("spec") or {}

            def amount(raw: Any, total: int = len(matching)) -> int:
                if isinstance(raw, str) and raw.endswith("%"):
                    return -(-int(raw[:-1]) * total // 100)
                return int(raw)

            if "minAvailable" in spec:
                allowed = healthy - amount(spec["minAvailable"])
            elif "maxUnavailable" in spec:
                allowed = amount(spec["maxUnavailable"]) - (len(matching) - healthy)
            else:
                continue
            if allowed < 1:
                raise ApiError(
                    429,
                    "TooManyRequests",
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    {
                        "causes": [
                            {
                                "reason": "DisruptionBudget",
                                "message": f"The disruption budget {pdb['metadata']['name']} needs "
                                f"{healthy - allowed} healthy pods and has {healthy} currently",
                            }
                        ]
                    },
                )

    async def log(self, request: web.Request, t: Target) -> web.Response:
        """GET pods/{name}/log from the container runtime."""
        assert t.name is not None
        from .exec import select_container

        pod = self.store.require(POD, t.namespace, t.name).obj
        container = select_container(pod, request.query.get("container"))
        data = await self.emu.runtime.read_log(clone(pod), container)
        tail = request.query.get("tailLines")
        if tail:
            data = b"".join(data.splitlines(keepends=True)[-int(tail) :])
        return web.Response(body=data, content_type="text/plain")


__all__ = ["Api", "Entry"]
