"""A small real VNC proxy on 127.0.0.1 for the client tests: aiohttp WebSocket at `/api/v1/vnc/{id}` speaking
RFB 3.8 in base64 TEXT frames (as StreamSpace's vnc_proxy.go relays it), a login route, and per-session
behaviours: the proxy's status codes before the upgrade, a server that never speaks, a freeze (bytes stop,
socket open), a cut (every socket closed, then 503 for a while, as an agent restart does).

It records when it sent bytes per session: the ground truth the monitor's outage is checked against."""

import asyncio
import base64
import struct
import threading
import time
from typing import Any, Dict, List, Optional

from aiohttp import WSMsgType, web

TOKEN = "tok-secret-123"
PASSWORD = "pw-secret-456"


class RFBProxy:
    def __init__(self, ssl_context: Optional[Any] = None) -> None:
        self.ssl_context = ssl_context
        self.modes: Dict[str, str] = {}  # session -> ok | 404 | 403 | 409 | 503 | silent | hang | close
        self.frozen: Dict[str, bool] = {}
        self.refuse_until: Dict[str, float] = {}
        self.sent: Dict[str, List[float]] = {}  # session -> times bytes were sent (ground truth)
        self.sockets: Dict[str, web.WebSocketResponse] = {}
        self.requests: List[str] = []  # request lines seen (path + query), to prove no token in URLs
        self.headers: List[Dict[str, str]] = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait(10)

    # -- server ------------------------------------------------------------------------------------------
    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/api/v1/auth/login", self._login)
        app.router.add_get("/api/v1/vnc/{sid}", self._vnc)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"
        ready.set()
        self.loop.run_forever()

    async def _login(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("password") != PASSWORD:
            return web.json_response({"error": "Invalid credentials"}, status=401)
        return web.json_response({"token": TOKEN})

    async def _vnc(self, request: web.Request) -> web.StreamResponse:
        sid = request.match_info["sid"]
        self.requests.append(str(request.rel_url))
        self.headers.append(dict(request.headers))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401)
        mode = self.modes.get(sid, "ok")
        if time.time() < self.refuse_until.get(sid, 0):
            return web.json_response({"error": "Agent agent-1 is not connected"}, status=503)
        if mode == "404":
            return web.json_response({"error": "Session not found"}, status=404)
        if mode == "403":
            return web.json_response({"error": "Access denied"}, status=403)
        if mode == "409":
            return web.json_response({"error": "Session is not running (state: pending)"}, status=409)
        if mode == "503":
            return web.json_response({"error": "Agent agent-1 is not connected"}, status=503)
        if mode == "hang":  # never answers the upgrade; cancelled at close
            await asyncio.sleep(60)
        old = self.sockets.pop(sid, None)
        if old is not None:  # one stream per session, as vnc_proxy.go:238
            await old.close()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets[sid] = ws
        try:
            if mode == "silent":
                async for _ in ws:
                    pass
            elif mode == "close":  # vnc_error from the agent: the proxy closes the UI socket
                await ws.close()
            else:
                await self._rfb(sid, ws)
        finally:
            if self.sockets.get(sid) is ws:
                del self.sockets[sid]
        return ws

    async def _send(self, sid: str, ws: web.WebSocketResponse, data: bytes) -> None:
        await ws.send_str(base64.b64encode(data).decode())
        self.sent.setdefault(sid, []).append(time.time())

    async def _rfb(self, sid: str, ws: web.WebSocketResponse) -> None:
        buf = bytearray()

        async def need(n: int) -> Optional[bytes]:
            while len(buf) < n:
                msg = await ws.receive()
                if msg.type != WSMsgType.TEXT:
                    return None
                buf.extend(base64.b64decode(msg.data))
            out = bytes(buf[:n])
            del buf[:n]
            return out

        await self._send(sid, ws, b"RFB 003.008\n")
        if await need(12) is None:
            return
        await self._send(sid, ws, b"\x01\x01")
        if await need(1) is None:
            return
        await self._send(sid, ws, struct.pack(">I", 0))
        if await need(1) is None:
            return
        pixel = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
        await self._send(sid, ws, struct.pack(">HH", 640, 480) + pixel + struct.pack(">I", 4) + b"test")
        while True:
            req = await need(10)
            if req is None:
                return
            _, _, x, y, w, h = struct.unpack(">BBHHHH", req)
            while self.frozen.get(sid):
                await asyncio.sleep(0.01)
            if ws.closed:
                return
            body = struct.pack(">BxH", 0, 1) + struct.pack(">HHHHi", x, y, w, h, 0) + bytes(w * h * 4)
            await self._send(sid, ws, body)

    # -- control from the test ---------------------------------------------------------------------------
    def cut(self, sid: str, refuse_for: float) -> float:
        """Close the session's stream and answer 503 for `refuse_for` seconds (an agent restart)."""
        self.refuse_until[sid] = time.time() + refuse_for

        async def close() -> None:
            ws = self.sockets.pop(sid, None)
            if ws is not None:
                await ws.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        return time.time()

    def gaps(self, sid: str, longer_than: float) -> List[float]:
        """Ground truth: the stretches between bytes sent longer than `longer_than`."""
        times = self.sent.get(sid, [])
        return [b - a for a, b in zip(times, times[1:], strict=False) if b - a > longer_than]

    def close(self) -> None:
        async def stop() -> None:
            for ws in list(self.sockets.values()):
                await ws.close()
            await self.runner.cleanup()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        try:
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
