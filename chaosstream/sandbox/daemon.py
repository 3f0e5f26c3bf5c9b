"""The sandbox process: `python -m chaosstream.sandbox.daemon STATE_DIR OPTIONS_JSON`.

It starts the sandbox, writes `ready` (or `error.txt`) in the state dir, and runs until SIGTERM/SIGINT,
or until the watched parent process dies (so `sandbox run` never leaves a sandbox behind).
"""

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

from chaosstream.sandbox.runtime import Sandbox, SandboxError, SandboxOptions


async def _main(state_dir: Path, options: dict) -> int:
    opts = SandboxOptions(
        state_dir=state_dir,
        agents=options.get("agents", 1),
        faults=frozenset(options.get("faults", ())),
        timers=options.get("timers", "fast"),
        db_dsn=options.get("db_dsn"),
        port=options.get("port", 0),
        kube_port=options.get("kube_port", 0),
        network=options.get("network", "auto"),
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
    await sandbox.stop()
    return 0


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
    options = json.loads(sys.argv[2])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    (state_dir / "daemon.pid").write_text(str(os.getpid()))
    try:
        code = asyncio.run(_main(state_dir, options))
    finally:
        (state_dir / "daemon.pid").unlink(missing_ok=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
