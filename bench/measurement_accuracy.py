"""Accuracy of our wait-probes against ground truth.

For N runs each of `agent-heartbeat.json` (offline detection) and `agent-disconnect.json` (reconnect)
on one fresh fast-timer sandbox, compare what the probe put in the journal (`elapsed_s`) with the agent
transitions the control plane recorded (`GET /sandbox/v1/events`):

* offline detection: first `offline` event after the partition action ended, minus that end;
* reconnect: first `online` event of a new connection after the rollout restart action ended, minus
  that end.

Target: |error| <= the poll interval (STREAMSPACE_POLL_INTERVAL).

    python bench/measurement_accuracy.py [--runs 10]
"""

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaosstream.sandbox.daemon.client import start_daemon, stop_daemon  # noqa: E402
from chaosstream.sandbox.matrix import run_experiment  # noqa: E402


def _t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _entry(journal: Dict[str, Any], name: str) -> Dict[str, Any]:
    return next(r for r in journal["run"] if r["activity"]["name"] == name)


def _events(env: Dict[str, str], since: dt.datetime) -> List[Dict[str, Any]]:
    url = env["STREAMSPACE_API_URL"] + "/sandbox/v1/events"
    stamp = since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return httpx.get(url, params={"since": stamp}, timeout=10).json()["events"]


def _measure(env: Dict[str, str], journal: Dict[str, Any], kind: str) -> Optional[Dict[str, float]]:
    if kind == "offline":
        action, probe, want = "partition-the-agent-from-the-api", "offline-detection-time", "offline"
    else:
        action, probe, want = "rollout-restart-the-agent", "agent-reconnect-time", "online"
    act, prb = _entry(journal, action), _entry(journal, probe)
    if not isinstance(prb.get("output"), dict):
        return None
    t0 = _t(act["end"])
    before = {e["connectionId"] for e in _events(env, _t(journal["start"]) - dt.timedelta(seconds=60))
              if _t(e["at"]) < t0}  # fmt: skip
    for event in _events(env, t0):
        if event["status"] != want:
            continue
        if want == "online" and event["connectionId"] in before:
            continue
        truth = (_t(event["at"]) - t0).total_seconds()
        measured = float(prb["output"]["elapsed_s"])
        return {"measured": measured, "truth": truth, "error": measured - truth}
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="css-bench-acc-"))
    env = start_daemon(state)
    poll = float(env["STREAMSPACE_POLL_INTERVAL"])
    try:
        for experiment, kind in (("agent-heartbeat.json", "offline"), ("agent-disconnect.json", "reconnect")):
            rows = []
            for i in range(args.runs):
                path = state / f"{kind}-{i}.json"
                run_experiment(
                    experiment,
                    dict(env, STREAMSPACE_PARTITION_DURATION="20"),
                    path,
                    experiments_dir=ROOT / "experiments",
                )
                result = _measure(env, json.loads(path.read_text()), kind)
                if result:
                    rows.append(result)
            errors = [abs(r["error"]) for r in rows]
            print(f"{kind:9s} ({experiment}): {len(rows)}/{args.runs} runs measured, poll interval {poll:g}s")
            if rows:
                print(
                    f"  probe elapsed_s median {statistics.median(r['measured'] for r in rows):.3f}s, "
                    f"ground truth median {statistics.median(r['truth'] for r in rows):.3f}s"
                )
                print(
                    f"  |error| median {statistics.median(errors):.3f}s, max {max(errors):.3f}s, "
                    f"mean signed {statistics.mean(r['error'] for r in rows):+.3f}s -> "
                    f"{'within' if max(errors) <= poll else 'OUTSIDE'} the poll interval"
                )
    finally:
        stop_daemon(state)


if __name__ == "__main__":
    main()
