"""Helpers shared by the tests (import them as `from helpers.waits import wait_for`; `tests/` is on
`sys.path` through `pythonpath` in pyproject's `[tool.pytest.ini_options]`).

- `waits`: `wait_for` (poll until truthy or fail), `wait_for_file`
- `net`: `free_port`
- `procs`: `pid_alive` (a zombie counts as dead)
- `chaos`: `python -m chaostoolkit ...` (`chaos`, `start_chaos`, `run_args`) and the `chaosstream` CLI
- `sentences`: `assert_one_sentence`, the project's standard for error messages
- `sandbox`: `RunningSandbox`, what the `sandbox_factory`/`shared_sandbox` fixtures return
- `harness`: `Harness`, activities called as Chaos Toolkit calls them plus independent observation
- `kube`: the real Kubernetes emulator in a thread, and manifests for it
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
