"""The command lines the tests run: `python -m chaostoolkit ...` (this interpreter's Chaos Toolkit, never
a `chaos` found on PATH) and the `chaosstream` CLI of this environment."""

import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

CHAOSSTREAM = (
    str(Path(sys.executable).with_name("chaosstream"))
    if Path(sys.executable).with_name("chaosstream").exists()
    else shutil.which("chaosstream") or "chaosstream"
)


def chaos_command(*args: str, log_file: Optional[Path] = None) -> List[str]:
    """`python -m chaostoolkit --no-version-check (--log-file F | --no-log-file) ARGS...`"""
    cmd = [sys.executable, "-m", "chaostoolkit", "--no-version-check"]
    cmd += ["--log-file", str(log_file)] if log_file else ["--no-log-file"]
    return cmd + [str(a) for a in args]


def run_args(
    experiment: Path, journal: Path, args: Sequence[str] = (), control_file: Optional[Path] = None
) -> List[str]:
    """The arguments of `chaos run`: extra `args`, the control file, the journal path, the experiment."""
    out = ["run", *args]
    if control_file is not None:
        out += ["--control-file", str(control_file)]
    return out + ["--journal-path", str(journal), str(experiment)]


def chaos(
    *args: str, env: Dict[str, str], cwd: Path, timeout: float = 240, log_file: Optional[Path] = None
) -> subprocess.CompletedProcess:
    """Run `chaos ARGS...` to its end with the environment `env` (complete, not merged); output captured
    as text (stdout and stderr apart)."""
    return subprocess.run(
        chaos_command(*args, log_file=log_file),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
    )


def _default_sigint() -> None:
    # A background job of a non-interactive shell inherits SIGINT ignored, and Python then never raises
    # KeyboardInterrupt; give `chaos run` the disposition a terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_chaos(
    *args: str, env: Dict[str, str], cwd: Path, log_file: Optional[Path] = None
) -> subprocess.Popen:
    """Start `chaos ARGS...` in its own session (signals can go to its process group, as a terminal or a
    pod would send them); stdout and stderr together, as text."""
    return subprocess.Popen(
        chaos_command(*args, log_file=log_file),
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
        preexec_fn=_default_sigint,
    )
