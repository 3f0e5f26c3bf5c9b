"""A Service's load balancing for the API replicas: each new TCP connection goes to the next ready backend.

The API Deployment has several replicas (chart: 2). The SRE's front port and the agents' Service route
(ClusterIP:8000, DNATed to the balancer's address) both end here, and every *connection* is handed to one
replica in turn, as kube-proxy's IPVS mode does (round robin; iptables mode picks at random): one
connection stays on its replica for its whole life, so an agent's WebSocket is held by exactly one replica.
Only ready backends are chosen (the endpoints controller drops a terminating pod at once); a connection
arriving while there is none is closed at once, like a Service without endpoints (kube-proxy REJECTs).
"""

import asyncio
import contextlib
import logging
from typing import List, Set, Tuple

__all__ = ["ServiceBalancer"]

log = logging.getLogger(__name__)
Backend = Tuple[str, int]


class ServiceBalancer:
    """Listeners that forward every accepted connection to one backend, round robin."""

    def __init__(self) -> None:
        self.backends: List[Backend] = []
        self._next = 0
        self._servers: List[asyncio.base_events.Server] = []
        self._pipes: Set[asyncio.Task] = set()

    def set_backends(self, backends: List[Backend]) -> None:
        """The ready endpoints; connections already forwarded stay where they are."""
        self.backends = list(backends)

    def pick(self) -> Backend:
        """The next backend in turn (IndexError when there is none)."""
        if not self.backends:
            raise IndexError("no ready endpoint")
        backend = self.backends[self._next % len(self.backends)]
        self._next += 1
        return backend

    async def listen(self, host: str, port: int) -> int:
        """Accept connections on host:port (0 = a free port); returns the bound port."""
        server = await asyncio.start_server(self._accept, host, port, reuse_address=True)
        self._servers.append(server)
        return server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._pipes.add(task)
        try:
            try:
                host, port = self.pick()
                up_reader, up_writer = await asyncio.open_connection(host, port)
            except (IndexError, OSError) as exc:
                log.debug("no backend for a connection: %s", exc)
                writer.close()
                return
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            if task is not None:
                self._pipes.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # a half-close would keep a WebSocket whose server went away open: close both directions
            with contextlib.suppress(Exception):
                writer.close()

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._pipes):
            task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        self._servers.clear()
