"""The sensitivity matrix: every experiment passes on the baseline sandbox and catches the faults it targets.

Used by the test suite (tests/e2e/test_matrix.py), by `bench/matrix.py` (wall times) and to generate the
README table, so the three never disagree. The experiment files are read from `experiments_dir`
(default: `./experiments`, relative to the current directory): they are not part of the package.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from chaosstream.sandbox.faults import FAULTS

__all__ = [
    "EXPERIMENTS",
    "TARGETS",
    "CellResult",
    "run_cell",
    "run_experiment",
    "markdown_table",
    "recovery_seconds",
    "experiments_path",
]

DEFAULT_EXPERIMENTS_DIR = Path("experiments")

# experiment file -> sandbox options
EXPERIMENTS: Dict[str, Dict[str, Any]] = {
    "agent-disconnect.json": {"agents": 1},
    "command-retry.json": {"agents": 1},
    "agent-heartbeat.json": {"agents": 1},
    "multi-agent-failover.json": {"agents": 3},
    "session-pod-loss.json": {"agents": 1},
    "total-agent-outage.json": {"agents": 1},
    # the 5-minute soak (30 s fast) shortened for the matrix's repeated runs: continuity is what it checks
    "vnc-streaming.json": {"agents": 1, "env": {"STREAMSPACE_STREAM_SOAK": "5"}},
}

# experiment -> the faults it must catch
TARGETS: Dict[str, Tuple[str, ...]] = {
    # vnc-tunnel-rbac: caught once the experiment monitors streams (issue 18's VNC steady-state probe)
    "agent-disconnect.json": (
        "agent-id-per-pod",
        "slow-reconnect",
        "orphan-sessions-on-agent-restart",
        "vnc-tunnel-rbac",
    ),
    "command-retry.json": ("fail-commands-while-disconnected", "no-replay-on-reconnect", "batched-frames"),
    "agent-heartbeat.json": ("no-heartbeat-sweep", "place-on-stale-agents"),
    "multi-agent-failover.json": ("place-on-stale-agents",),
    "total-agent-outage.json": ("place-on-stale-agents",),
    "session-pod-loss.json": (),
    "vnc-streaming.json": ("vnc-tunnel-rbac",),
}


@dataclasses.dataclass
class CellResult:
    experiment: str
    fault: Optional[str]
    verdict: int
    label: str
    deciding: List[str]
    wall_s: float
    run_s: float
    recovery_s: float
    chaos_exit: int

    @property
    def caught(self) -> bool:
        return self.verdict != 0


def recovery_seconds(journal: Dict[str, Any]) -> float:
    """What the system itself needed: the sum of every wait-probe's measured `elapsed_s` in the method."""
    total = 0.0
    for run in journal.get("run", []):
        output = run.get("output")
        if run.get("activity", {}).get("type") == "probe" and isinstance(output, dict):
            value = output.get("elapsed_s")
            if isinstance(value, (int, float)):
                total += float(value)
    return round(total, 3)


def experiments_path(experiments_dir: Optional[Path] = None) -> Path:
    """`experiments_dir` (default `./experiments`) as an absolute path; FileNotFoundError if it is missing."""
    directory = Path(DEFAULT_EXPERIMENTS_DIR if experiments_dir is None else experiments_dir).resolve()
    if not directory.is_dir():
        raise FileNotFoundError(
            f"No experiments directory at {directory}: run from the project root or pass experiments_dir."
        )
    return directory


def run_experiment(
    experiment: str,
    env: Dict[str, str],
    journal: Path,
    timeout: float = 300,
    experiments_dir: Optional[Path] = None,
) -> Tuple[int, float]:
    """`chaos run` one experiment file of `experiments_dir` (see `experiments_path`) with `env` added."""
    cmd = [
        sys.executable, "-m", "chaostoolkit", "--no-version-check", "--no-log-file", "run",
        "--journal-path", str(journal), str(experiments_path(experiments_dir) / experiment),
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(
        cmd, env=dict(os.environ, **env), capture_output=True, text=True, timeout=timeout, cwd=journal.parent
    )
    (journal.parent / f"{journal.stem}.log").write_text(proc.stdout + proc.stderr)
    return proc.returncode, time.monotonic() - started


def _result(
    experiment: str, fault: Optional[str], journal_path: Path, code: int, run_s: float, wall_s: float
) -> CellResult:
    from chaosstream.journal.verdict import evaluate

    journal = json.loads(journal_path.read_text())
    verdict = evaluate(journal)
    return CellResult(
        experiment=experiment,
        fault=fault,
        verdict=verdict.code,
        label=verdict.label,
        deciding=[f"{f.phase}:{f.name}" for f in verdict.deciding],
        wall_s=round(wall_s, 2),
        run_s=round(run_s, 2),
        recovery_s=recovery_seconds(journal),
        chaos_exit=code,
    )


_CLAIMED: set = set()


def _state_dir() -> Path:
    """A fresh state dir whose sandbox instance (bridge `cssbr<k>`, from the dir's hash) no running sandbox
    uses, so that cells can run in parallel without one cleaning up another's network."""
    import hashlib

    for _ in range(50):
        state = Path(tempfile.mkdtemp(prefix="css-matrix-state-"))
        instance = hashlib.sha1(str(state.resolve()).encode()).digest()[0] % 250 + 1
        if instance not in _CLAIMED and not Path(f"/sys/class/net/cssbr{instance}").exists():
            _CLAIMED.add(instance)
            return state
        shutil.rmtree(state, ignore_errors=True)
    raise RuntimeError("no free sandbox instance number (250 in use?)")


def run_cell(
    experiment: str,
    faults: Sequence[str] = (),
    repeats: int = 1,
    workdir: Optional[Path] = None,
    experiments_dir: Optional[Path] = None,
    profile: str = "intended",
    options: Optional[Dict[str, Any]] = None,
) -> List[CellResult]:
    """Start a sandbox with `faults` (and `profile`, and sandbox `options` such as `api_replicas`), run
    the experiment `repeats` times on it, stop it. Cells may run in parallel (threads).

    The experiment file is `experiment` in `experiments_dir` (default `./experiments`).
    """
    from chaosstream.sandbox.daemon.client import start_daemon, stop_daemon

    directory = experiments_path(experiments_dir)  # fail before starting a sandbox
    workdir = workdir or Path(tempfile.mkdtemp(prefix="css-matrix-"))
    state = _state_dir()
    started = time.monotonic()
    results: List[CellResult] = []
    try:
        env = start_daemon(
            state,
            agents=EXPERIMENTS[experiment]["agents"],
            faults=faults,
            parent_pid=os.getpid(),
            profile=profile,
            extra=options,
        )
        boot = time.monotonic() - started
        for index in range(repeats):
            fault = ",".join(faults) or None
            journal = workdir / f"{experiment[:-5]}-{fault or 'baseline'}-{index}.journal.json"
            t0 = time.monotonic()
            extra = dict(env, **EXPERIMENTS[experiment].get("env", {}))
            code, run_s = run_experiment(experiment, extra, journal, experiments_dir=directory)
            wall = (time.monotonic() - t0) + (boot if index == 0 else 0.0)
            results.append(_result(experiment, fault, journal, code, run_s, wall))
    finally:
        stop_daemon(state)
        shutil.rmtree(state, ignore_errors=True)
    return results


def markdown_table(results: List[CellResult]) -> str:
    """Experiment × fault table: `caught (probe)` / `passes`, `—` where the fault is not targeted."""
    faults = list(FAULTS)
    by_cell = {(r.experiment, r.fault): r for r in results}
    header = "| experiment | baseline | " + " | ".join(f"`{f}`" for f in faults) + " |"
    lines = [header, "|" + "---|" * (len(faults) + 2)]
    for experiment in EXPERIMENTS:
        base = by_cell.get((experiment, None))
        row = [f"`{experiment}`", ("passes" if base and not base.caught else "FAILS") if base else "?"]
        for fault in faults:
            cell = by_cell.get((experiment, fault))
            if cell is None:
                row.append("—")
            elif cell.caught:
                probe = cell.deciding[0].split(":", 1)[-1] if cell.deciding else cell.label
                row.append(f"caught ({probe})")
            else:
                row.append("**missed**")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
