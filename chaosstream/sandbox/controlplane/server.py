"""Running the control plane: ``serve`` (asyncio, for a CLI) and ``ControlPlaneThread`` (for tests/benches)."""

import asyncio
import logging
import threading
from typing import Optional

from aiohttp import web

from chaosstream.sandbox.controlplane.app import create_app
from chaosstream.sandbox.controlplane.config import ControlPlaneConfig

log = logging.getLogger(__name__)


async def start_site(config: ControlPlaneConfig, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start the app on ``host:port`` (0 = any free port); return the runner and the bound port."""
    runner = web.AppRunner(create_app(config), handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    return runner, bound


async def serve(config: ControlPlaneConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run until cancelled (e.g. ``asyncio.run(serve(cfg))`` under a CLI that handles signals)."""
    runner, bound = await start_site(config, host, port)
    log.info("control plane listening on http://%s:%s", host, bound)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


class ControlPlaneThread:
    """The control plane on its own event loop in a daemon thread.

    ``start()`` returns once the socket listens; ``url`` is then ``http://127.0.0.1:<port>``. ``stop()``
    shuts it down gracefully (agents see their sockets close); pass the same ``port`` to a new instance
    to emulate an API restart.
    """

    def __init__(self, config: ControlPlaneConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Optional[web.AppRunner] = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def app(self) -> web.Application:
        assert self._runner is not None
        return self._runner.app

    def start(self, timeout: float = 15.0) -> "ControlPlaneThread":
        self._thread = threading.Thread(target=self._run, name="controlplane", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("control plane did not start")
        if self._error is not None:
            raise RuntimeError("control plane failed to start") from self._error
        return self

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self._runner, self.port = self.loop.run_until_complete(
                start_site(self.config, self.host, self.port)
            )
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()
            self.loop.close()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._runner.cleanup())
        self.loop.close()

    def call(self, coro, timeout: float = 10.0):  # noqa: ANN001 - any coroutine
        """Run ``coro`` on the control plane's loop and return its result (e.g. ``hub.sweep()``)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        if self.loop is None or self._thread is None or not self._thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)

    def __enter__(self) -> "ControlPlaneThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
