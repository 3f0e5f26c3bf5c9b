"""A minimal aiohttp stand-in for the StreamSpace API (login, admin agents, sessions), served from a thread.

Shapes follow the contract: login -> {"token", "expiresAt", "user"}; GET /api/v1/admin/agents ->
{"agents": [A], "total": n}; GET /api/v1/sessions -> {"sessions": [S], "total": n}. The agents and sessions
come from a JSON state file that the fixture activities (acts.set_agent) rewrite during a run.
"""

import asyncio
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Dict, Optional

from aiohttp import web

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLXNlY3JldA"
USERNAME, PASSWORD = "admin", "s3cr3t-admin-pass"


def _go_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def default_state() -> Dict[str, Any]:
    """Two online agents and three sessions."""
    return {
        "agents": {"agent-a": {"status": "online"}, "agent-b": {"status": "online"}},
        "sessions": [
            {"name": "admin-firefox-0001", "state": "running"},
            {"name": "admin-firefox-0002", "state": "running"},
            {"name": "admin-gimp-0003", "state": "pending"},
        ],
    }


class FakeStreamSpace:
    """Serve the fake on 127.0.0.1:<random port> in a daemon thread; `url` is its base URL."""

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        if not state_file.exists():
            state_file.write_text(json.dumps(default_state()))
        self.url = ""
        self.frozen: Dict[str, float] = {}
        self.requests = 0
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Optional[web.AppRunner] = None
        self._ready = threading.Event()

    def _state(self) -> Dict[str, Any]:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return default_state()

    async def _login(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("username") != USERNAME or body.get("password") != PASSWORD:
            return web.json_response({"error": "Invalid credentials"}, status=401)
        return web.json_response(
            {"token": TOKEN, "expiresAt": _go_time(time.time() + 86400), "user": {"id": "admin"}}
        )

    def _authorized(self, request: web.Request) -> bool:
        self.requests += 1
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    async def _agents(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "Unauthorized"}, status=401)
        now = time.time()
        agents = []
        for agent_id, info in self._state()["agents"].items():
            status = info.get("status", "online")
            if status == "online":
                self.frozen.pop(agent_id, None)
                beat = now - 0.4
            else:  # heartbeats stop arriving while the agent is cut off
                beat = self.frozen.setdefault(agent_id, now - 0.4)
            agents.append(
                {
                    "id": agent_id,
                    "agentId": agent_id,
                    "platform": "kubernetes",
                    "status": status,
                    "lastHeartbeat": _go_time(beat),
                    "approvalStatus": "approved",
                }
            )
        return web.json_response({"agents": agents, "total": len(agents)})

    async def _sessions(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "Unauthorized"}, status=401)
        sessions = [dict(s, namespace="streamspace", user="admin") for s in self._state()["sessions"]]
        return web.json_response({"sessions": sessions, "total": len(sessions)})

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/api/v1/auth/login", self._login)
        app.router.add_get("/api/v1/admin/agents", self._agents)
        app.router.add_get("/api/v1/sessions", self._sessions)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def start(self) -> "FakeStreamSpace":
        threading.Thread(target=self._serve, name="fake-streamspace", daemon=True).start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
