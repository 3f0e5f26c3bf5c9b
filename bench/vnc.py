"""VNC through the API: the handshake a user's browser waits for, and the stream monitor's own cost.

Starts a sandbox (fast timers, one agent), creates `STREAMS` sessions (default 20), and prints:

1. `vnc_handshake` through `/api/v1/vnc/:id` (login cached): p50/p95 of the time to the RFB banner, to
   the first framebuffer update, and of the whole probe call, over N calls (default 50);
2. the stream monitor (`monitor_streams`) holding 1 and then all the streams for `WINDOW` seconds
   (default 10): CPU seconds of this process per second, HTTP requests (logins and upgrades), RFB update
   requests per second, and the outage it measured (0 on a healthy sandbox).

    python bench/vnc.py [N] [STREAMS] [WINDOW]
"""

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import List

from chaosstream import actions, probes
from chaosstream.sandbox.daemon.client import start_daemon, stop_daemon


def _pct(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    streams = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    window = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
    state = Path(tempfile.mkdtemp(prefix="css-bench-vnc-"))
    env = start_daemon(state, parent_pid=os.getpid(), tenants=False)
    try:
        os.environ.update(env)
        # the configured user's sessions: the proxy streams a session to its owner only
        ids = actions.create_sessions(count=streams, user=env["STREAMSPACE_USERNAME"])["sessions"]
        probes.wait_for_sessions_state("running", session_ids=ids, timeout=120)
        probes.wait_for_vnc(session_ids=ids, timeout=60)
        one = ids[:1]
        banner, first, call = [], [], []
        for _ in range(n):
            started = time.perf_counter()
            out = probes.vnc_handshake(session_ids=one, timeout=10)
            call.append((time.perf_counter() - started) * 1000)
            (result,) = out["sessions"].values()
            if result["ok"]:
                banner.append(result["banner_ms"])
                first.append(result["first_update_ms"])
        print(f"vnc_handshake through the API, {n} calls ({len(banner)} ok):")
        for name, values in (("banner", banner), ("first update", first), ("probe call", call)):
            if values:
                print(
                    f"  {name:<13} p50 {statistics.median(values):7.1f} ms   p95 {_pct(values, 0.95):7.1f} ms"
                )
        for count in sorted({1, streams}):
            chosen = ids[:count]
            actions.monitor_streams(session_ids=chosen, max_streams=count)
            probes.stream_continuity(wait=10)
            cpu0, t0 = time.process_time(), time.monotonic()
            time.sleep(window)
            cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
            report = actions.stop_stream_monitor()
            updates = count * wall / report["interval_s"]
            print(
                f"monitor, {count:>2} stream(s), {wall:.1f} s: CPU {cpu / wall * 100:5.1f} % of one core, "
                f"{report['requests']} HTTP requests (logins + upgrades) in total, ~{updates / wall:.0f} RFB update "
                f"requests/s, outage measured {report['outage_s_total']} s, interruptions {report['interruptions']}"
            )
        return 0
    finally:
        stop_daemon(state)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
