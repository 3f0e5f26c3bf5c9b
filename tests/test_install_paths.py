"""Every documented install path gives the whole product: a fresh virtualenv (not the test one), no extras.

- the Dockerfile's recipe: its COPY set in a build directory, then its RUN line's `pip install` (a plain,
  non-editable install, which is also what `pip install chaostoolkit-streamspace` gives);
- the README's editable install (`pip install -e .`).
Each must give `chaos discover` with >= 30 typed activities and every `chaosstream` subcommand.
"""

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = pytest.mark.slow

COMMANDS = (
    ["verdict", "--help"],
    ["report", "--help"],
    ["check", "--help"],
    ["heal", "--expired-only", "--help"],
)


def _venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    return where / "bin"


def _pip(bin_dir: Path, args: list, cwd: Path) -> None:
    proc = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", *args],
        cwd=cwd, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def _clean_env(bin_dir: Path) -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    return env


def _assert_complete(bin_dir: Path, cwd: Path) -> None:
    env = _clean_env(bin_dir)
    out = cwd / "discovery.json"
    proc = subprocess.run(
        [str(bin_dir / "chaos"), "--no-version-check", "discover", "--no-install", "--no-system-info",
         "--discovery-path", str(out), "chaostoolkit-streamspace"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0 and out.exists(), proc.stdout + proc.stderr
    activities = json.loads(out.read_text())["activities"]
    typed = [a for a in activities if all(arg.get("type") not in (None, "object") for arg in a["arguments"])]
    assert len(typed) >= 30, f"only {len(typed)} typed activities of {len(activities)}"
    for args in COMMANDS:
        run = subprocess.run(
            [str(bin_dir / "chaosstream"), *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, f"chaosstream {' '.join(args)}: {run.stdout}{run.stderr}"
        assert "Usage:" in run.stdout
    # the standard-library JUnit writer needs no extra
    journal = cwd / "journal.json"
    journal.write_text(json.dumps({"status": "completed", "dry": True, "run": []}))
    run = subprocess.run(
        [str(bin_dir / "chaosstream"), "verdict", str(journal), "--junit", str(cwd / "junit.xml")],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 7, run.stdout + run.stderr
    assert (cwd / "junit.xml").exists()


def _dockerfile_pip_args() -> list:
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r"^RUN pip install (.+?)(?:\s*\\\n|\s*&&|$)", text, re.M)
    assert match, "the Dockerfile has no 'RUN pip install' line"
    return shlex.split(match.group(1))


def test_dockerfile_recipe_plain_install(tmp_path):
    build = tmp_path / "src"
    build.mkdir()
    text = (ROOT / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *sources, _dest = line.split()
        for src in sources:
            path = ROOT / src
            if path.is_dir():
                shutil.copytree(path, build / src, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(path, build / src)
    bin_dir = _venv(tmp_path / "venv")
    _pip(bin_dir, _dockerfile_pip_args(), cwd=build)
    _assert_complete(bin_dir, tmp_path)


def test_readme_editable_install(tmp_path):
    bin_dir = _venv(tmp_path / "venv")
    _pip(bin_dir, ["-e", str(ROOT), "chaostoolkit>=1.19"], cwd=tmp_path)
    _assert_complete(bin_dir, tmp_path)
