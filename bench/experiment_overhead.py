"""Experiment overhead: `chaos run` wall time vs the recovery time the system itself needed.

For each experiment on a fresh fast-timer sandbox: wall time of `chaos run`, the recovery time (sum of
the wait-probes' `elapsed_s`, `chaosstream.sandbox.matrix.recovery_seconds`) and the overhead between
them, broken down from the journal: CLI start-up (process start -> journal start: interpreter,
imports, validation, configuration), steady-state probes, method activities other than waiting
(session creation, partition set-up, ...), rollbacks, and exit (journal end -> process end).
Target: overhead <= 1 s or <= 5 % of the wall time.

With `--real`, also `agent-heartbeat.json` on a `--timers real` sandbox against StreamSpace's manual
procedure for the same check (test plan 3.3: cut the network, sleep 60, check, heal, sleep 30 = 90 s).

    python bench/experiment_overhead.py [--real]
"""

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaosstream.sandbox.daemon.client import start_daemon, stop_daemon  # noqa: E402
from chaosstream.sandbox.matrix import EXPERIMENTS, recovery_seconds  # noqa: E402


def _t(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _run(experiment: str, env: Dict[str, str], journal: Path) -> Dict[str, Any]:
    cmd = [sys.executable, "-m", "chaostoolkit", "--no-version-check", "--no-log-file", "run",
           "--journal-path", str(journal), str(ROOT / "experiments" / experiment)]  # fmt: skip
    t_start = time.time()
    started = time.perf_counter()
    proc = subprocess.run(
        cmd, env=dict(__import__("os").environ, **env), capture_output=True, text=True, cwd=ROOT
    )
    wall = time.perf_counter() - started
    t_end = time.time()
    data = json.loads(journal.read_text())
    recovery = recovery_seconds(data)
    steady = sum(p.get("duration", 0) for phase in ("before", "after")
                 for p in ((data.get("steady_states") or {}).get(phase) or {}).get("probes", []))  # fmt: skip
    method = sum(r.get("duration", 0) for r in data["run"])
    rollbacks = sum(r.get("duration", 0) for r in data.get("rollbacks", []))
    first = min([_t(r["start"]) for r in data["run"]] or [_t(data["start"])])
    return {
        "rc": proc.returncode,
        "status": data["status"],
        "wall": wall,
        "recovery": recovery,
        "overhead": wall - recovery,
        "startup": _t(data["start"]) - t_start,
        "steady": steady,
        "method_other": method - recovery,
        "rollbacks": rollbacks,
        "exit": t_end - _t(data["end"]),
        "unaccounted": (_t(data["end"]) - _t(data["start"])) - steady - method - rollbacks - (first - first),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", action="store_true", help="also compare with the manual 90 s procedure")
    args = parser.parse_args()
    header = f"{'experiment':28s} {'rc':>2s} {'wall':>6s} {'recov':>6s} {'overh':>6s} {'%':>5s} | " \
             f"{'start':>5s} {'steady':>6s} {'method':>6s} {'rollb':>5s} {'exit':>5s} {'other':>5s}"  # fmt: skip
    print(header)
    for experiment, options in EXPERIMENTS.items():
        state = Path(tempfile.mkdtemp(prefix="css-bench-oh-"))
        env = start_daemon(state, agents=options.get("agents", 1))
        try:
            r = _run(experiment, env, state / "journal.json")
        finally:
            stop_daemon(state)
        ok = r["overhead"] <= 1.0 or r["overhead"] <= 0.05 * r["wall"]
        print(f"{experiment:28s} {r['rc']:2d} {r['wall']:6.2f} {r['recovery']:6.2f} {r['overhead']:6.2f} "
              f"{100 * r['overhead'] / r['wall']:4.0f}% | {r['startup']:5.2f} {r['steady']:6.2f} "
              f"{r['method_other']:6.2f} {r['rollbacks']:5.2f} {r['exit']:5.2f} {r['unaccounted']:5.2f}"
              f"  {'ok' if ok else 'OVER TARGET'}")  # fmt: skip
    print(
        "columns: seconds; overh = wall - recov; start = process start -> journal start; steady = "
        "steady-state probes; method = method activities minus wait-probe recovery; other = journal "
        "time outside activities (controls, pauses, chaoslib)"
    )
    if args.real:
        state = Path(tempfile.mkdtemp(prefix="css-bench-real-"))
        env = start_daemon(state, timers="real", timeout=300)
        try:
            r = _run("agent-heartbeat.json", env, state / "journal.json")
        finally:
            stop_daemon(state)
        print(
            f"real timers: agent-heartbeat.json {r['wall']:.1f}s wall (recovery {r['recovery']:.1f}s, "
            f"rc {r['rc']}) vs StreamSpace's manual procedure 60 s + 30 s = 90 s of sleeps "
            f"({90 / r['wall']:.1f}x)"
        )


if __name__ == "__main__":
    main()
