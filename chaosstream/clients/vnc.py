"""VNC streams through the StreamSpace API, as a user's browser opens them.

The route is `GET /api/v1/vnc/:sessionId` (api/cmd/main.go:636, a protected route;
api/internal/handlers/vnc_proxy.go:113). After the WebSocket upgrade the proxy relays RFB bytes as
TEXT frames whose payload is their base64 text, both ways (vnc_proxy.go:396, :442). Before the upgrade
it answers 404 (unknown session, :147), 403 (not the session's owner, :158), 409 `Session is not running
(state: …)` (:165), 503 (no agent assigned, :174; agent not connected, :181).

The JWT goes in the `Authorization: Bearer` header: the auth middleware tries `?token=` (and a cookie)
first on `/api/v1/vnc/` paths but falls back to the header (api/internal/auth/middleware.go:168-199), so
the token never sits in a URL that could reach a log, an error or a journal.

Only one stream per session exists at a time: the proxy closes the open one when a new one arrives
(vnc_proxy.go:238). A probe or monitor therefore takes the stream away from the user (or from another
probe) watching the same session: point them at sessions nobody watches.
"""

import base64
import json
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote, urlsplit, urlunsplit

import websocket
from chaoslib.exceptions import ActivityFailed

from chaosstream.clients.streamspace import _TOKENS, _TOKENS_LOCK, StreamSpaceAPI, _token_key, _verify
from chaosstream.settings import Settings, redact

__all__ = ["VNCFailure", "Handshake", "VNCStream", "vnc_url", "open_stream", "streamable"]

# RFB 3.8 (RFC 6143): message and security type numbers.
_SECURITY_NONE = 1
_FRAMEBUFFER_UPDATE_REQUEST = 3
_FRAMEBUFFER_UPDATE = 0
_SET_COLOUR_MAP = 1
_BELL = 2
_SERVER_CUT_TEXT = 3
_RAW = 0


class VNCFailure(ActivityFailed):
    """A stream could not be opened or broke; `reason` is a short machine-readable word
    (`not-found`, `forbidden`, `not-running`, `agent`, `auth`, `http`, `timeout`, `tls`, `unreachable`,
    `closed`, `protocol`) and the message one sentence for a human."""

    def __init__(self, message: str, reason: str, status_code: int = 0) -> None:
        super().__init__(message)
        self.reason = reason
        self.status_code = status_code


@dataclass
class Handshake:
    """What one stream opening measured (seconds from the start of the WebSocket connect)."""

    session_id: str
    upgrade_s: float  # the API accepted the WebSocket
    banner_s: float  # the RFB version banner arrived
    first_update_s: float  # the first FramebufferUpdate was complete
    version: str
    width: int
    height: int
    name: str

    def as_dict(self) -> Dict[str, Any]:
        return {
            "upgrade_ms": round(self.upgrade_s * 1000, 1),
            "banner_ms": round(self.banner_s * 1000, 1),
            "first_update_ms": round(self.first_update_s * 1000, 1),
            "version": self.version,
            "size": f"{self.width}x{self.height}",
            "desktop": self.name,
        }


def vnc_url(api_url: str, session_id: str) -> str:
    """`ws(s)://<api>/api/v1/vnc/<session>` for an `http(s)://` API URL (no token in it)."""
    parts = urlsplit(api_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/") + "/api/v1/vnc/" + quote(session_id, safe="")
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def _sslopt(settings: Settings) -> Optional[Dict[str, Any]]:
    if not settings.api_url.startswith("https"):
        return None
    verify = _verify(settings)
    if verify is False:
        return {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
    return {"context": verify}


def _status_sentence(session_id: str, user: str, status: int, body: Any) -> VNCFailure:
    """One sentence per status of vnc_proxy.go's answers before the upgrade."""
    error = ""
    try:
        parsed = json.loads(body or b"{}")
        if isinstance(parsed, dict):
            error = " ".join(str(parsed.get("error") or "").split())[:200]
    except (ValueError, TypeError):
        pass
    if status == 404:
        return VNCFailure(
            f"VNC: session {session_id} is unknown to the API (404): check the session id.",
            "not-found",
            status,
        )
    if status == 403:
        return VNCFailure(
            f"VNC: the API refused user {user or '(token)'} the stream of session {session_id} (403 Access denied): "
            "StreamSpace's VNC proxy admits only the session's owner; probe sessions that user created.",
            "forbidden",
            status,
        )
    if status == 409:
        state = error.split("state:", 1)[1].strip(" )") if "state:" in error else "unknown"
        return VNCFailure(
            f"VNC: session {session_id} is not running (state {state}): the API refuses its stream (409).",
            "not-running",
            status,
        )
    if status == 503:
        what = error or "agent not connected"
        return VNCFailure(
            f"VNC: no agent can carry the stream of session {session_id} (503 {what}): the session's agent is "
            "not connected to the control plane.",
            "agent",
            status,
        )
    if status == 401:
        return VNCFailure(
            "VNC: the API rejected the token on the stream (401): give valid credentials.", "auth", status
        )
    return VNCFailure(
        f"VNC: the API answered HTTP {status} instead of opening the stream of session {session_id}"
        + (f" ({error})" if error else "")
        + ": is 'streamspace_api_url' the StreamSpace API?",
        "http",
        status,
    )


class VNCStream:
    """One RFB stream through the API's VNC proxy: connect, handshake, then read updates.

    Every read is bounded by `timeout`; every failure raises `VNCFailure` with one sentence. The token
    is sent as a header and never appears in a URL or a message.
    """

    def __init__(self, settings: Settings, session_id: str, timeout: float) -> None:
        self.settings = settings
        self.session_id = session_id
        self.timeout = timeout
        self.ws: Optional[websocket.WebSocket] = None
        self._buffer = bytearray()
        self.bytes_received = 0
        self.first_bytes_at: Optional[float] = None  # time.time() of the first RFB bytes (the banner)
        self.last_bytes_at: Optional[float] = None  # time.time() of the last RFB bytes received
        self.width = self.height = 0
        self.requests_made = 0  # HTTP requests (logins and upgrades)
        self.bpp = 4

    # -- transport -------------------------------------------------------------------------------------
    def _token(self) -> str:
        api = StreamSpaceAPI(self.settings, timeout=self.timeout)
        try:
            before = api.requests_made
            token = api._token()
            self.requests_made += api.requests_made - before
            return token
        finally:
            api.close()

    def connect(self) -> float:
        """Open the WebSocket; returns the seconds it took. A 401 on a cached token logs in once more."""
        started = time.monotonic()
        for attempt in (0, 1):
            token = self._token()
            try:
                self.requests_made += 1
                self.ws = websocket.create_connection(
                    vnc_url(self.settings.api_url, self.session_id),
                    timeout=self.timeout,
                    header=[f"Authorization: Bearer {token}"],
                    sslopt=_sslopt(self.settings),
                    enable_multithread=True,
                    skip_utf8_validation=True,
                )
                return time.monotonic() - started
            except websocket.WebSocketBadStatusException as exc:
                if exc.status_code == 401 and attempt == 0 and not self.settings.token:
                    with _TOKENS_LOCK:
                        _TOKENS.pop(_token_key(self.settings), None)
                    continue
                raise _status_sentence(
                    self.session_id, self.settings.username or "", exc.status_code, exc.resp_body
                ) from None
            except Exception as exc:
                raise self._transport_failure(exc, "opening the stream") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _transport_failure(self, exc: BaseException, doing: str) -> VNCFailure:
        where = redact(self.settings.api_url)
        if isinstance(exc, VNCFailure):
            return exc
        if isinstance(exc, ActivityFailed):  # a login failure: already one sentence
            return VNCFailure(str(exc), "auth")
        if isinstance(exc, (websocket.WebSocketTimeoutException, socket.timeout, TimeoutError)):
            return VNCFailure(
                f"VNC: no answer from {where} within {self.timeout:g}s while {doing} for session "
                f"{self.session_id}: the proxy, the agent's tunnel or the session's VNC server hangs.",
                "timeout",
            )
        if isinstance(exc, ssl.SSLError):
            return VNCFailure(
                f"VNC: TLS failed with {where} ({redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, self.settings)}): "
                "check 'streamspace_ca_cert' / 'streamspace_verify_tls'.",
                "tls",
            )
        if isinstance(exc, websocket.WebSocketConnectionClosedException) or (
            self.ws is not None and isinstance(exc, (ConnectionError, OSError))
        ):
            return VNCFailure(
                f"VNC: the API closed the stream of session {self.session_id} while {doing} (the agent's tunnel "
                "or socket failed, or another client took the session's stream).",
                "closed",
            )
        if isinstance(exc, (ConnectionError, OSError, websocket.WebSocketException)):
            text = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, self.settings)
            return VNCFailure(
                f"VNC: cannot reach {where} while {doing} for session {self.session_id} ({text[:200]}): check "
                "'streamspace_api_url' and that the API is running.",
                "unreachable",
            )
        return VNCFailure(
            f"VNC: {type(exc).__name__} while {doing} for session {self.session_id}.", "protocol"
        )

    def _fill(self, count: int, deadline: float, doing: str) -> None:
        """Receive frames until `count` bytes are buffered or the deadline passes."""
        assert self.ws is not None
        while len(self._buffer) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._transport_failure(TimeoutError(), doing)
            try:
                self.ws.settimeout(left)
                opcode, data = self.ws.recv_data()
            except Exception as exc:
                raise self._transport_failure(exc, doing) from None
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise self._transport_failure(websocket.WebSocketConnectionClosedException(), doing)
            if opcode == websocket.ABNF.OPCODE_TEXT:
                try:
                    chunk = base64.b64decode(data, validate=True)
                except ValueError:
                    raise VNCFailure(
                        f"VNC: the stream of session {self.session_id} carried a frame that is not base64 "
                        "(StreamSpace's proxy relays RFB bytes as base64 text).",
                        "protocol",
                    ) from None
            elif opcode == websocket.ABNF.OPCODE_BINARY:
                chunk = bytes(data)
            else:
                continue
            if chunk:
                self.bytes_received += len(chunk)
                self.last_bytes_at = time.time()
                if self.first_bytes_at is None:
                    self.first_bytes_at = self.last_bytes_at
                self._buffer.extend(chunk)

    def _read(self, count: int, deadline: float, doing: str) -> bytes:
        self._fill(count, deadline, doing)
        out = bytes(self._buffer[:count])
        del self._buffer[:count]
        return out

    def _send(self, data: bytes) -> None:
        assert self.ws is not None
        try:
            self.ws.send(base64.b64encode(data).decode("ascii"))
        except Exception as exc:
            raise self._transport_failure(exc, "sending to the stream") from None

    # -- RFB -------------------------------------------------------------------------------------------
    def handshake(self) -> Handshake:
        """Connect and run RFB 3.8 up to the first complete FramebufferUpdate (security type None)."""
        started = time.monotonic()
        upgrade = self.connect()
        deadline = started + self.timeout
        banner = self._read(12, deadline, "waiting for the RFB banner")
        banner_s = time.monotonic() - started
        if not banner.startswith(b"RFB ") or banner[-1:] != b"\n":
            raise VNCFailure(
                f"VNC: session {self.session_id}'s stream did not start with an RFB banner ({banner[:12]!r}).",
                "protocol",
            )
        version = banner[4:11].decode("ascii", "replace")
        minor = int(version[4:7]) if version[4:7].isdigit() else 8
        self._send(b"RFB 003.008\n" if minor >= 8 else banner)
        doing = "negotiating RFB security"
        if minor >= 7:
            (count,) = self._read(1, deadline, doing)
            if count == 0:
                raise self._refused(deadline, "refused the connection")
            types = list(self._read(count, deadline, doing))
            if _SECURITY_NONE not in types:
                raise VNCFailure(
                    f"VNC: session {self.session_id}'s server offers security types {types}, not None (1): "
                    "the probe does not send passwords.",
                    "protocol",
                )
            self._send(bytes([_SECURITY_NONE]))
        else:
            (kind,) = struct.unpack(">I", self._read(4, deadline, doing))
            if kind != _SECURITY_NONE:
                raise VNCFailure(
                    f"VNC: session {self.session_id}'s RFB 3.3 server requires security type {kind}, not None.",
                    "protocol",
                )
        if minor >= 8:  # RFB 3.8 sends a SecurityResult even for None (3.3 and 3.7 do not)
            (result,) = struct.unpack(">I", self._read(4, deadline, doing))
            if result != 0:
                raise self._refused(deadline, "failed the security handshake")
        self._send(b"\x01")  # ClientInit, shared: do not ask the server to drop other viewers
        doing = "waiting for ServerInit"
        width, height = struct.unpack(">HH", self._read(4, deadline, doing))
        pixel = self._read(16, deadline, doing)
        self.bpp = max(pixel[0] // 8, 1)
        (name_len,) = struct.unpack(">I", self._read(4, deadline, doing))
        name = self._read(min(name_len, 1 << 16), deadline, doing).decode("utf-8", "replace")
        self.width, self.height = width, height
        # the top-left 64×64 only: proves pixels flow end to end without pulling a raw full screen
        self.request_update(incremental=False, width=64, height=64)
        self.read_update(deadline)
        return Handshake(
            self.session_id,
            upgrade,
            banner_s,
            time.monotonic() - started,
            version,
            width,
            height,
            name[:100],
        )

    def _refused(self, deadline: float, what: str) -> VNCFailure:
        try:
            (length,) = struct.unpack(">I", self._read(4, deadline, "reading the refusal"))
            reason = self._read(min(length, 500), deadline, "reading the refusal").decode("utf-8", "replace")
        except VNCFailure:
            reason = ""
        return VNCFailure(
            f"VNC: session {self.session_id}'s server {what}" + (f" ({reason})" if reason else "") + ".",
            "protocol",
        )

    def request_update(self, incremental: bool = True, width: int = 0, height: int = 0) -> None:
        """FramebufferUpdateRequest for the top-left `width`×`height` (default: the whole screen)."""
        w = min(width or self.width, self.width) if self.width else width
        h = min(height or self.height, self.height) if self.height else height
        self._send(struct.pack(">BBHHHH", _FRAMEBUFFER_UPDATE_REQUEST, int(incremental), 0, 0, w, h))

    def _message_length(self) -> Optional[Tuple[int, int]]:
        """(type, length) of the first server message if the buffer holds all of it, else None."""
        buf = self._buffer
        if not buf:
            return None
        kind = buf[0]
        if kind == _FRAMEBUFFER_UPDATE:
            if len(buf) < 4:
                return None
            (count,) = struct.unpack_from(">H", buf, 2)
            offset = 4
            for _ in range(count):
                if len(buf) < offset + 12:
                    return None
                _, _, w, h, encoding = struct.unpack_from(">HHHHi", buf, offset)
                if encoding != _RAW:
                    raise VNCFailure(
                        f"VNC: session {self.session_id}'s server sent encoding {encoding}; the probe asked "
                        "for none but Raw.",
                        "protocol",
                    )
                offset += 12 + w * h * self.bpp
            return (kind, offset) if len(buf) >= offset else None
        if kind == _SET_COLOUR_MAP:
            if len(buf) < 6:
                return None
            (n,) = struct.unpack_from(">H", buf, 4)
            return (kind, 6 + 6 * n) if len(buf) >= 6 + 6 * n else None
        if kind == _BELL:
            return kind, 1
        if kind == _SERVER_CUT_TEXT:
            if len(buf) < 8:
                return None
            (length,) = struct.unpack_from(">I", buf, 4)
            return (kind, 8 + length) if len(buf) >= 8 + length else None
        raise VNCFailure(
            f"VNC: session {self.session_id}'s server sent unknown RFB message type {kind}.", "protocol"
        )

    def read_update(self, deadline: float) -> int:
        """Read server messages until one FramebufferUpdate is complete; returns its size in bytes.
        A timeout consumes nothing: a later call resumes a message cut in the middle."""
        while True:
            found = self._message_length()
            if found is None:
                self._fill(len(self._buffer) + 1, deadline, "waiting for a framebuffer update")
                continue
            kind, length = found
            del self._buffer[:length]
            if kind == _FRAMEBUFFER_UPDATE:
                return length

    def close(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            try:
                ws.close(timeout=1)
            except Exception:  # already gone
                pass

    def __enter__(self) -> "VNCStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_stream(settings: Settings, session_id: str, timeout: float) -> Tuple[VNCStream, Handshake]:
    """A stream after its handshake and first update; the caller closes it."""
    stream = VNCStream(settings, session_id, timeout)
    try:
        return stream, stream.handshake()
    except BaseException:
        stream.close()
        raise


def streamable(
    settings: Settings, session_ids: List[str], timeout: float
) -> Tuple[List[str], Dict[str, str]]:
    """The sessions the configured user may stream, and the others with their owner: StreamSpace's VNC
    proxy streams a session to its owner only, admins included (vnc_proxy.go:153-159). With a token and no
    username the owner cannot be compared: every session is kept."""
    user = settings.username
    if not user or not session_ids:
        return list(session_ids), {}
    with StreamSpaceAPI(settings, timeout=timeout) as api:
        owners = {}
        for sid in session_ids:
            session = api.get_session(sid)
            owner = (session or {}).get("user") or (session or {}).get("userId")
            owners[sid] = str(owner) if owner else ""
    keep = [sid for sid in session_ids if owners[sid] in ("", user)]
    return keep, {sid: owners[sid] for sid in session_ids if sid not in keep}
