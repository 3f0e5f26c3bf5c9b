"""A small RFB (VNC) 3.8 server: what a session pod's desktop serves on its VNC port (3000).

RFC 6143: the server sends its ProtocolVersion (``RFB 003.008\\n``), offers security type None (1), answers
SecurityResult OK, reads ClientInit and sends ServerInit (1024x768, 32 bpp true colour). It then answers
every FramebufferUpdateRequest with a FramebufferUpdate carrying one small Raw rectangle whose colour
changes per frame: a non-incremental request at once, an incremental one at the next frame tick
(``frame_interval``, 1 s real, scaled with the timer set), so a stream carries real bytes at a steady,
cheap rate. Key, pointer, cut-text, SetPixelFormat and SetEncodings messages are read and ignored; an
unknown message type closes the connection (as a real server would on a protocol error).

One :class:`RfbServer` per session pod, an asyncio listener on 127.0.0.1 in the process that runs the
kubelet: no OS process per pod (tenants run ~50 session pods). ``stop()`` closes the listener and every
open connection, as the pod's death does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct

__all__ = ["RfbServer", "PROTOCOL_VERSION", "WIDTH", "HEIGHT", "TILE"]

log = logging.getLogger(__name__)

PROTOCOL_VERSION = b"RFB 003.008\n"
WIDTH, HEIGHT = 1024, 768
TILE = 8  # the updated rectangle is TILE x TILE pixels (256 bytes of Raw pixels)
SECURITY_NONE = 1
# 32 bpp, depth 24, little-endian, true colour, max 255 per channel, shifts 16/8/0
PIXEL_FORMAT = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
# client → server message type → bytes after the type byte (None: variable length, handled apart)
_FIXED = {0: 19, 3: 9, 4: 7, 5: 5}


class RfbServer:
    """One pod's VNC listener; see the module docstring."""

    def __init__(self, name: str, frame_interval: float = 1.0) -> None:
        self.name = name
        self.frame_interval = frame_interval
        self.port = 0
        self.connections = 0  # accepted so far (for tests)
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._frame = 0

    async def start(self, host: str = "127.0.0.1") -> int:
        self._server = await asyncio.start_server(self._serve, host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Close the listener and every connection (the pod is gone)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    def _update(self) -> bytes:
        """One FramebufferUpdate: a TILE x TILE Raw rectangle whose colour and place change per frame."""
        self._frame += 1
        n = self._frame
        x, y = (n * TILE) % WIDTH, ((n * TILE) // WIDTH * TILE) % HEIGHT
        pixel = struct.pack("<I", (n * 0x10305) & 0xFFFFFF)
        header = struct.pack(">BxH", 0, 1) + struct.pack(">HHHHi", x, y, TILE, TILE, 0)
        return header + pixel * (TILE * TILE)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            await self._session(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # a protocol bug must not take the kubelet's loop down
            log.exception("RFB session of %s failed", self.name)
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(PROTOCOL_VERSION)
        await writer.drain()
        version = await reader.readexactly(12)
        if not version.startswith(b"RFB 003."):
            return
        if version >= b"RFB 003.007\n":
            writer.write(bytes([1, SECURITY_NONE]))  # one security type: None
            await writer.drain()
            if (await reader.readexactly(1))[0] != SECURITY_NONE:
                writer.write(struct.pack(">I", 1) + _reason(b"only security type None is offered"))
                await writer.drain()
                return
            if version >= b"RFB 003.008\n":
                writer.write(struct.pack(">I", 0))  # SecurityResult OK (3.8 sends it for None too)
        else:
            writer.write(struct.pack(">I", SECURITY_NONE))  # 3.3: the server decides
        await reader.readexactly(1)  # ClientInit (the shared flag)
        name = self.name.encode()
        writer.write(struct.pack(">HH", WIDTH, HEIGHT) + PIXEL_FORMAT + struct.pack(">I", len(name)) + name)
        await writer.drain()
        pending: asyncio.Task | None = None
        try:
            while True:
                kind = (await reader.readexactly(1))[0]
                if kind == 2:  # SetEncodings
                    count = struct.unpack(">xH", await reader.readexactly(3))[0]
                    await reader.readexactly(4 * count)
                elif kind == 6:  # ClientCutText
                    length = struct.unpack(">3xI", await reader.readexactly(7))[0]
                    await reader.readexactly(length)
                elif kind in _FIXED:
                    body = await reader.readexactly(_FIXED[kind])
                    if kind == 3 and (pending is None or pending.done()):
                        delay = self.frame_interval if body[0] else 0.0  # incremental → next tick
                        pending = asyncio.create_task(self._send_update(writer, delay))
                else:
                    log.info("RFB %s: unknown client message type %d, closing", self.name, kind)
                    return
        finally:
            if pending is not None:
                pending.cancel()

    async def _send_update(self, writer: asyncio.StreamWriter, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.write(self._update())
            await writer.drain()


def _reason(text: bytes) -> bytes:
    return struct.pack(">I", len(text)) + text
