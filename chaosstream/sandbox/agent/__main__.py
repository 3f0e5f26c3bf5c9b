"""Entry point: ``python -m chaosstream.sandbox.agent``.

Exit codes: 0 after SIGTERM/SIGINT, 1 when the configuration is invalid, the Kubernetes client cannot be
built, or the first registration/dial fails (the real agent's log.Fatalf, so the kubelet restarts it).
"""

import asyncio
import concurrent.futures
import logging
import os
import signal
import sys
import threading
from typing import Any, Optional

from chaosstream.sandbox.agent.config import AgentConfig, ConfigError, is_hex_key, load_config
from chaosstream.sandbox.agent.mainloop import Agent, StartupError

log = logging.getLogger("chaosstream.sandbox.agent")

SHUTDOWN_BUDGET = 0.8  # seconds; the process must be gone within a second of SIGTERM


def _setup_logging(agent_id: str) -> None:
    """Timestamped lines on stderr carrying the agent id (the sandbox redirects them per pod)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            f"%(asctime)s.%(msecs)03d [agent {agent_id}] %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    # urllib3 logs every retry of an unreachable API server; the handlers log the final error.
    for noisy in ("urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _preload_workloads() -> None:
    import chaosstream.sandbox.agent.workloads  # noqa: F401  (imports kubernetes)


class _WorkloadsWhenReady:
    """The Kubernetes client, built in a worker thread while the agent registers and dials.

    Importing `kubernetes` costs the Python agent up to seconds on a loaded machine — a start-up cost the Go
    agent does not have — so it is taken off the reconnection path. Calls (made in executor threads) wait
    for the client; a client that cannot be built stops the agent with the real agent's error.
    """

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.real: Any = None
        self.error: Optional[BaseException] = None

    def build(self, kubeconfig: str) -> None:
        try:
            from chaosstream.sandbox.agent.workloads import Workloads  # imports kubernetes

            self.real = Workloads(kubeconfig)
        except Exception as exc:
            self.error = exc
        finally:
            self.ready.set()

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.ready.wait()
            if self.real is None:
                raise RuntimeError(f"Kubernetes client: {self.error}")
            return getattr(self.real, name)(*args, **kwargs)

        return call


async def _serve(config: AgentConfig, executor: concurrent.futures.Executor) -> int:
    loop = asyncio.get_running_loop()
    workloads = _WorkloadsWhenReady()
    built = loop.run_in_executor(executor, workloads.build, config.kubeconfig)
    stop = asyncio.Event()
    received: list = []

    async def watch_client() -> None:
        await built
        if workloads.error is not None:
            log.error("Failed to create agent: Kubernetes client: %s", workloads.error)
            received.append("client-error")
            stop.set()

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    agent = Agent(config, workloads, executor)  # type: ignore[arg-type]
    client_task = asyncio.create_task(watch_client(), name="agent-client")
    run_task = asyncio.create_task(agent.run(), name="agent-run")
    stop_task = asyncio.create_task(stop.wait(), name="agent-stop")
    await asyncio.wait({run_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if run_task.done() and not stop.is_set():
        stop_task.cancel()
        exc: Optional[BaseException] = run_task.exception()
        if isinstance(exc, StartupError):
            log.error("Agent error: %s", exc)
        else:
            log.error("Agent stopped unexpectedly: %r", exc)
        code = 1
    else:
        log.info("Received signal: %s, stopping...", received[0] if received else "?")
        run_task.cancel()
        await asyncio.gather(run_task, return_exceptions=True)
    try:
        async with asyncio.timeout(SHUTDOWN_BUDGET):
            await agent.shutdown()
    except TimeoutError:
        log.warning("Graceful shutdown took longer than %.1fs; exiting anyway", SHUTDOWN_BUDGET)
    client_task.cancel()
    if received == ["client-error"]:
        return 1
    if code == 0:
        log.info("Agent stopped")
    return code


def _exit_before_loop(signum: int, _frame: object) -> None:
    """SIGTERM/SIGINT before the event loop runs: nothing is open yet, so leave at once with 0."""
    log.info("Received signal: %s before connecting, exiting", signal.Signals(signum).name)
    logging.shutdown()
    os._exit(0)


def main() -> int:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_before_loop)  # replaced by the loop's handlers once it runs
    _setup_logging(os.environ.get("AGENT_ID") or "?")
    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        log.error("Invalid configuration: %s", exc)
        return 1
    _setup_logging(config.agent_id)
    if not is_hex_key(config.api_key):
        log.warning("AGENT_API_KEY is not 64 hex characters: the control plane will answer 401")
    elector = None
    if os.environ.get("ENABLE_HA", "").lower() == "true":
        from chaosstream.sandbox.agent.leader import LeaderElector

        elector = LeaderElector(
            config.agent_id, config.namespace, config.pod_name or config.agent_id, config.timers,
            os.environ.get("KUBECONFIG", ""),
        )  # fmt: skip
        # A standby is a started process: load what serving needs (the kubernetes client) while it waits,
        # in the background, so that a new pod that can lead at once does not wait for the import.
        threading.Thread(target=_preload_workloads, name="preload", daemon=True).start()
        elector.wait_until_leader()  # standbys block here (SIGTERM exits them)
        elector.keep_renewing()
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="k8s")
    code = asyncio.run(_serve(config, executor))
    if elector is not None:
        elector.release()
    executor.shutdown(wait=False, cancel_futures=True)
    return code


if __name__ == "__main__":
    exit_code = main()
    logging.shutdown()
    sys.stderr.flush()
    # A Kubernetes call may still block a worker thread; do not let interpreter shutdown join it.
    os._exit(exit_code)
