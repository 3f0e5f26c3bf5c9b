"""A minimal browser-like VNC client for tests: RFB 3.8 over the control plane's WebSocket proxy
(`GET /api/v1/vnc/:sessionId?token=`), every frame a TEXT frame of base64 RFB bytes both ways (as
api/internal/handlers/vnc_proxy.go relays them), plus `rfb_handshake` for a raw socket (a port-forward)."""

import base64
import socket
import struct
import time
from typing import List, Optional, Tuple

import websocket


class VncStream:
    """One UI connection; records when RFB bytes arrived and how many."""

    def __init__(self, api_url: str, session_id: str, token: str, timeout: float = 5.0) -> None:
        self.url = f"{api_url.replace('http', 'ws', 1)}/api/v1/vnc/{session_id}?token={token}"
        self.ws = websocket.create_connection(self.url, timeout=timeout)
        self.opened = time.time()
        self.buffer = b""
        self.received = 0
        self.frames = 0
        self.arrivals: List[float] = []

    def _fill(self, need: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.buffer) < need:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise websocket.WebSocketTimeoutException(f"no RFB bytes within {timeout}s")
            self.ws.settimeout(remaining)
            # control frames too: websocket-client would answer the server's pings inside recv_data and
            # restart its timeout on each, so a silent stream pinged often would never time out
            opcode, data = self.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise websocket.WebSocketConnectionClosedException("closed by the server")
            if opcode == websocket.ABNF.OPCODE_PING:
                self.ws.pong(data)
                continue
            if opcode == websocket.ABNF.OPCODE_PONG:
                continue
            if opcode != websocket.ABNF.OPCODE_TEXT:
                raise AssertionError(f"the proxy sent a non-text frame (opcode {opcode})")
            raw = base64.b64decode(data, validate=True)
            self.arrivals.append(time.time())
            self.received += len(raw)
            self.frames += 1
            self.buffer += raw

    def read(self, size: int, timeout: float = 5.0) -> bytes:
        self._fill(size, timeout)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def send(self, data: bytes) -> None:
        self.ws.send(base64.b64encode(data).decode())

    def handshake(self, timeout: float = 5.0) -> Tuple[bytes, int, int]:
        """Banner, security None, ServerInit; returns (banner, width, height)."""
        banner = self.read(12, timeout)
        self.send(b"RFB 003.008\n")
        count = self.read(1, timeout)[0]
        types = self.read(count, timeout)
        assert 1 in types, types
        self.send(b"\x01")
        assert self.read(4, timeout) == b"\x00\x00\x00\x00"
        self.send(b"\x01")  # ClientInit, shared
        width, height = struct.unpack(">HH", self.read(4, timeout))
        self.read(16, timeout)
        (name_len,) = struct.unpack(">I", self.read(4, timeout))
        self.read(name_len, timeout)
        return banner, width, height

    def update(self, incremental: bool = True, timeout: float = 5.0) -> int:
        """One FramebufferUpdateRequest and its FramebufferUpdate; returns the update's size in bytes."""
        self.send(struct.pack(">BBHHHH", 3, 1 if incremental else 0, 0, 0, 1024, 768))
        head = self.read(4, timeout)
        assert head[0] == 0, head
        (rects,) = struct.unpack(">xxH", head)
        size = 4
        for _ in range(rects):
            _x, _y, w, h, encoding = struct.unpack(">HHHHi", self.read(12, timeout))
            assert encoding == 0
            self.read(w * h * 4, timeout)
            size += 12 + w * h * 4
        return size

    def closed_by_server(self, timeout: float) -> bool:
        """True once the server dropped the socket within `timeout` (frames meanwhile are ignored)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                self.ws.settimeout(max(0.05, deadline - time.time()))
                opcode, _ = self.ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    return True
            except websocket.WebSocketTimeoutException:
                return False
            except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
                return True
        return False

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except Exception:  # noqa: BLE001 - already gone
            pass


def connect_status(api_url: str, session_id: str, token: Optional[str]) -> Tuple[int, bytes]:
    """The HTTP status (and body) of a refused upgrade, or 101 when the upgrade succeeded."""
    query = f"?token={token}" if token else ""
    url = f"{api_url.replace('http', 'ws', 1)}/api/v1/vnc/{session_id}{query}"
    try:
        ws = websocket.create_connection(url, timeout=5)
    except websocket.WebSocketBadStatusException as exc:
        return exc.status_code, exc.resp_body or b""
    ws.close()
    return 101, b""


def rfb_handshake(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """RFB 3.8 on a raw socket (e.g. a port-forward): banner, None, ServerInit, one update; returns the
    banner."""
    sock.settimeout(timeout)

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError(f"closed after {len(data)} of {n} bytes")
            data += chunk
        return data

    banner = exactly(12)
    sock.sendall(b"RFB 003.008\n")
    exactly(exactly(1)[0])
    sock.sendall(b"\x01")
    assert exactly(4) == b"\x00\x00\x00\x00"
    sock.sendall(b"\x01")
    exactly(20)
    exactly(struct.unpack(">I", exactly(4))[0])
    sock.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, 1024, 768))
    head = exactly(4)
    assert head[0] == 0
    exactly(12 + 8 * 8 * 4)
    return banner
