"""The sandbox daemon process: `python -m chaosstream.sandbox.daemon STATE_DIR OPTIONS_FILE`.

It starts the sandbox, writes `ready` (or `error.txt`) in the state dir, and runs until SIGTERM/SIGINT,
or until the watched parent process dies (so `sandbox run` never leaves a sandbox behind).

SIGUSR1 asks it to restart one component in place: `chaosstream sandbox restart` writes
`restart/<id>.request` (the component name) and signals; the daemon answers in `restart/<id>.done`
(`ok <sentence>` or `error <sentence>`). Requests are served one at a time, in order.
"""

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path

from chaosstream.sandbox.stack import Sandbox, SandboxError, SandboxOptions


async def _main(state_dir: Path, options: dict) -> int:
    opts = SandboxOptions(
        state_dir=state_dir,
        agents=options.get("agents", 1),
        faults=frozenset(options.get("faults", ())),
        timers=options.get("timers", "fast"),
        profile=options.get("profile", "intended"),
        agent_replicas=options.get("agent_replicas", 1),
        db_dsn=options.get("db_dsn"),
        port=options.get("port", 0),
        kube_port=options.get("kube_port", 0),
        network=options.get("network", "auto"),
        cni=options.get("cni", "enforcing"),
        service_route=options.get("service_route", "kube-proxy"),
        image_pull=options.get("image_pull", "fast"),
        pod_security=options.get("pod_security", "privileged"),
        tenants=options.get("tenants", True),
        api_replicas=options.get("api_replicas", 0),
    )
    parent = options.get("parent_pid")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    sandbox = None
    try:
        sandbox = Sandbox(opts)
        await sandbox.start()
    except (SandboxError, ValueError) as exc:
        (state_dir / "error.txt").write_text(str(exc))
        if sandbox is not None:
            await sandbox.stop()
        return 2
    except Exception as exc:  # anything else: still clean up, and say what happened
        logging.exception("sandbox failed to start")
        (state_dir / "error.txt").write_text(f"The sandbox failed to start: {type(exc).__name__}: {exc}")
        if sandbox is not None:
            await sandbox.stop()
        return 2
    restart_wake = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, restart_wake.set)
    restarts = asyncio.create_task(_serve_restarts(sandbox, state_dir / "restart", restart_wake))
    (state_dir / "ready").write_text(str(os.getpid()))
    while not stop.is_set():
        if parent and not _alive(parent):
            logging.warning("parent %s is gone; stopping the sandbox", parent)
            break
        try:
            await asyncio.wait_for(stop.wait(), timeout=0.5)
        except TimeoutError:
            pass
    (state_dir / "ready").unlink(missing_ok=True)
    restarts.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await restarts
    await sandbox.stop()
    return 0


async def _serve_restarts(sandbox: Sandbox, requests: Path, wake: asyncio.Event) -> None:
    """Serve `restart/*.request` files whenever SIGUSR1 arrives (see the module docstring)."""
    requests.mkdir(exist_ok=True)
    while True:
        await wake.wait()
        wake.clear()
        for request in sorted(requests.glob("*.request"), key=lambda p: p.stat().st_mtime):
            component = request.read_text().strip()
            request.unlink(missing_ok=True)
            try:
                answer = "ok " + await sandbox.restart(component)
            except SandboxError as exc:
                answer = f"error {exc}"
            except Exception as exc:  # say what failed; the daemon keeps serving
                logging.exception("restart of %s failed", component)
                answer = f"error Restarting {component} failed: {type(exc).__name__}: {exc}"
            done = request.with_suffix(".done")
            tmp = request.with_suffix(".tmp")
            tmp.write_text(answer)
            tmp.replace(done)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main() -> None:
    state_dir = Path(sys.argv[1])
    # The options (a --db-dsn may hold a password) come in a 0600 file, never on the command line (ps).
    options = json.loads(Path(sys.argv[2]).read_text())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    (state_dir / "daemon.pid").write_text(str(os.getpid()))
    try:
        code = asyncio.run(_main(state_dir, options))
    finally:
        (state_dir / "daemon.pid").unlink(missing_ok=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
