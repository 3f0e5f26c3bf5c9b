"""Journals recorded from real sandbox runs of `experiments/agent-heartbeat.json` (with the safety and
timeline controls), and ways to derive more runs of the same experiment from them.

- `passed`: the baseline sandbox; `deviated`: `--fault no-heartbeat-sweep` (offline never detected);
- `three-agents`: `--agents 3` (one agent partitioned; the detection probe, watching the prefix, failed);
- `not-injected`: `STREAMSPACE_AGENT_SELECTOR=app=no-such-agent` (the partition action found no pod);
- `rollback-failed`: exec partition of a missing container (injection and heal both failed);
- `real-timers`: `--timers real` (StreamSpace's 30 s heartbeat / 45 s stale: offline detected after 46 s);
- `total-agent-outage`, `agent-disconnect`: those experiments, `--agents 2` (a scale-down, a restart);
- `vnc-agent-disconnect`: agent-disconnect with users' VNC streams held through the restart (issue 18).
"""

import copy
import json
from pathlib import Path
from typing import Any, Dict

from chaosstream.timeutil import epoch_iso, parse_timestamp

REAL = Path(__file__).resolve().parent / "real"
NAMES = ("passed", "deviated", "three-agents", "not-injected", "rollback-failed", "real-timers", "total-agent-outage",
         "agent-disconnect", "vnc-agent-disconnect")  # fmt: skip
_TIME_KEYS = {"start", "end", "expires_at", "at", "started", "ended"}


def load(name: str) -> Dict[str, Any]:
    return json.loads((REAL / f"{name}.json").read_text())


def shifted(journal: Dict[str, Any], seconds: float) -> Dict[str, Any]:
    """A copy with every timestamp (ISO strings and epoch `t`) moved by `seconds`."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if key in _TIME_KEYS and isinstance(item, str) and parse_timestamp(item) is not None:
                    out[key] = epoch_iso(parse_timestamp(item) + seconds)
                elif key == "t" and isinstance(item, (int, float)):
                    out[key] = item + seconds
                else:
                    out[key] = walk(item)
            return out
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    return walk(copy.deepcopy(journal))


def with_measure(journal: Dict[str, Any], probe: str, seconds: float) -> Dict[str, Any]:
    """A copy in which the method probe `probe` measured `elapsed_s = seconds`."""
    out = copy.deepcopy(journal)
    for run in out["run"]:
        if run["activity"]["name"] == probe:
            run["output"]["elapsed_s"] = seconds
    return out
