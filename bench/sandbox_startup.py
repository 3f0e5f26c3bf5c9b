"""Sandbox start-up: wall time from `start_daemon` to every agent online (fast timers), with 1 and 3
agents, and the resident memory of the whole sandbox (daemon + PostgreSQL + agent processes, psutil).

Target: <= 5 s with 3 agents.

    python bench/sandbox_startup.py [--runs 3]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Tuple

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaosstream.sandbox.daemon.client import daemon_pid, start_daemon, stop_daemon  # noqa: E402


def _rss_mib(state: Path) -> Tuple[float, int]:
    """RSS of the daemon and every descendant (PostgreSQL backends, agents); (MiB, process count)."""
    root = psutil.Process(daemon_pid(state))
    procs = [root, *root.children(recursive=True)]
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20, len(procs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for agents in (1, 3):
        times, rss, count = [], 0.0, 0
        for _ in range(args.runs):
            state = Path(tempfile.mkdtemp(prefix="css-bench-up-"))
            started = time.perf_counter()
            start_daemon(state, agents=agents)  # returns once every agent is online (and approved)
            times.append(time.perf_counter() - started)
            time.sleep(1.0)  # let agents settle after their first heartbeat
            rss, count = _rss_mib(state)
            stop_daemon(state)
        target = " (target <= 5 s: " + ("met" if statistics.median(times) <= 5 else "MISSED") + ")"
        print(
            f"{agents} agent(s): start to all online median {statistics.median(times):.2f}s "
            f"(min {min(times):.2f}, max {max(times):.2f}, {args.runs} runs)"
            f"{target if agents == 3 else ''}; RSS {rss:.0f} MiB over {count} processes"
        )


if __name__ == "__main__":
    main()
