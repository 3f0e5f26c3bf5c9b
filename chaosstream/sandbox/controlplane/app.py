"""The aiohttp application: routes (``api/cmd/main.go`` ``setupRoutes``) and background tasks."""

import logging
from typing import Optional

from aiohttp import web

from chaosstream.sandbox.controlplane import agents, auth, sandboxapi, sessions, websocket
from chaosstream.sandbox.controlplane.config import ControlPlaneConfig
from chaosstream.sandbox.controlplane.db import Database
from chaosstream.sandbox.controlplane.dispatcher import Dispatcher
from chaosstream.sandbox.controlplane.hub import AgentHub, AgentRoutes
from chaosstream.sandbox.controlplane.reconciler import Reconciler
from chaosstream.sandbox.controlplane.state import CP, ControlPlane
from chaosstream.sandbox.controlplane.vnc import VNC, VncProxy, list_streams, vnc_connect
from chaosstream.sandbox.schema import SANDBOX_DDL

log = logging.getLogger(__name__)
DRAIN_GRACE = 3.0  # seconds a stopping replica waits for the commands its sockets carry (shared routing)
RECONCILER: web.AppKey[Reconciler] = web.AppKey("reconciler", Reconciler)


async def health(request: web.Request) -> web.Response:
    """Static, no DB check — as the real ``/health``."""
    return web.json_response({"status": "healthy", "service": "streamspace-api"})


async def version(request: web.Request) -> web.Response:
    return web.json_response({"version": request.app[CP].config.version, "api": "v1", "phase": "2.2"})


@web.middleware
async def errors_as_json(request: web.Request, handler: auth.Handler) -> web.StreamResponse:
    """Unhandled errors become ``500 {"error": "Internal server error", "details": ...}``."""
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        if request.app[CP].config.profile.gin_wire:
            # gin.New() without HandleMethodNotAllowed: both are gin's default 404 (api/cmd/main.go:245)
            return web.Response(status=404, text="404 page not found", content_type="text/plain")
        raise
    except web.HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - the API answers 500 instead of dropping the request
        log.exception("%s %s failed", request.method, request.path)
        return web.json_response({"error": "Internal server error", "details": str(exc)}, status=500)


def create_app(config: ControlPlaneConfig, routes: Optional[AgentRoutes] = None) -> web.Application:
    """A control plane (one API replica) bound to ``config.dsn``; the DB must already hold the schema
    (``apply_schema``). Replicas given the same ``routes`` share agent routing (the Redis AgentHub)."""
    app = web.Application(middlewares=[errors_as_json], client_max_size=10 * 1024 * 1024)
    db = Database(config.dsn, size=config.db_pool_size)
    hub = AgentHub(db, config, routes)
    dispatcher = Dispatcher(db, hub, config)
    app[CP] = ControlPlane(config=config, db=db, hub=hub, dispatcher=dispatcher)
    app[RECONCILER] = Reconciler(dispatcher)
    app[VNC] = VncProxy(app[CP])
    hub.vnc_sink = app[VNC].agent_message

    user, admin = auth.require_user, (lambda h: auth.require_user(h, role="admin"))
    app.router.add_get("/health", health)
    app.router.add_get("/version", version)
    app.router.add_post("/api/v1/auth/login", auth.login)

    app.router.add_get("/api/v1/sessions", user(sessions.list_sessions))
    app.router.add_post("/api/v1/sessions", user(sessions.create_session))
    app.router.add_get("/api/v1/sessions/{id}", user(sessions.get_session))
    app.router.add_delete("/api/v1/sessions/{id}", user(sessions.delete_session))
    app.router.add_put("/api/v1/sessions/{id}/hibernate", user(sessions.hibernate_session))
    app.router.add_put("/api/v1/sessions/{id}/wake", user(sessions.wake_session))

    app.router.add_get("/api/v1/admin/agents", admin(agents.list_agents))
    app.router.add_get("/api/v1/admin/agents/{agent_id}", admin(agents.get_agent))
    app.router.add_delete("/api/v1/admin/agents/{agent_id}", admin(agents.delete_agent))
    app.router.add_post("/api/v1/admin/agents/{agent_id}/command", admin(agents.send_command))
    app.router.add_post("/api/v1/admin/agents/{agent_id}/approve", admin(agents.approve_agent))
    app.router.add_post("/api/v1/admin/agents/{agent_id}/reject", admin(agents.reject_agent))

    app.router.add_post("/api/v1/agents/register", agents.register_agent)
    app.router.add_get("/api/v1/agents/connect", websocket.agent_connect)
    app.router.add_post("/api/v1/agents/{agent_id}/heartbeat", agents.http_heartbeat)

    # JWT from ?token=, the proxy cookie or the Bearer header (api/internal/auth/middleware.go:165-185)
    app.router.add_get("/api/v1/vnc/{sessionId}", vnc_connect)

    app.router.add_get("/sandbox/v1/events", sandboxapi.list_events)
    app.router.add_get("/sandbox/v1/streams", list_streams)
    app.router.add_get("/sandbox/v1/faults", sandboxapi.list_faults)

    app.on_startup.append(_startup)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_cleanup)
    return app


async def _startup(app: web.Application) -> None:
    cp = app[CP]
    await cp.db.execute(SANDBOX_DDL)  # our ground-truth table, whatever built the DB
    await cp.db.load_columns(["agent_commands", "sessions"])
    await auth.ensure_admin_password(app)
    await cp.dispatcher.dispatch_pending()  # as DispatchPendingCommands at API start
    cp.hub.start()
    app[RECONCILER].start()
    log.info("control plane up (faults: %s)", ", ".join(sorted(cp.config.faults)) or "none")


async def _shutdown(app: web.Application) -> None:
    """Before the server closes connections: stop tasks and close agent sockets cleanly."""
    await app[CP].hub.drain(grace=DRAIN_GRACE)
    await app[RECONCILER].stop()
    await app[VNC].shutdown()
    await app[CP].hub.stop()


async def _cleanup(app: web.Application) -> None:
    await app[CP].db.close()
