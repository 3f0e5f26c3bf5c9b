"""Least privilege, proven: every experiment (and `chaosstream heal`, the reaper) runs as the CronJob's
ServiceAccount against the sandbox's RBAC-enforcing Kubernetes API. No call is refused, and the
recorded trace of calls uses every rule deploy/kubernetes/rbac.yaml grants (nothing unused)."""

import json
import os
import subprocess
import sys

import pytest
from helpers import EXPERIMENTS, ROOT
from helpers.chaos import chaos, run_args
from helpers.rbac import role_grants, service_account_kubeconfig, trace, unused_grants, used

from chaosstream.journal.verdict import evaluate

pytestmark = pytest.mark.slow

SINGLE_AGENT_RUNS = [
    ("agent-disconnect.json", {}),
    ("command-retry.json", {}),
    ("agent-heartbeat.json", {}),  # partition method "ephemeral" (the default)
    ("agent-heartbeat.json", {"STREAMSPACE_PARTITION_METHOD": "exec"}),
    ("agent-heartbeat.json", {"STREAMSPACE_PARTITION_METHOD": "network-policy"}),
    ("session-pod-loss.json", {}),
    ("total-agent-outage.json", {}),
]
USER = "system:serviceaccount:streamspace:chaosstream-runner"


def _run_all(sandbox, runs, tmp_path, kubeconfig):
    failures = []
    for i, (name, extra) in enumerate(runs):
        journal = tmp_path / f"journal-{i}.json"
        env = sandbox.environ(KUBECONFIG=str(kubeconfig), **extra)
        chaos(
            *run_args(EXPERIMENTS / name, journal, control_file=EXPERIMENTS / "controls.yaml"),
            env=env, cwd=ROOT, timeout=400,
        )  # fmt: skip
        text = journal.read_text() if journal.exists() else ""
        verdict = evaluate(json.loads(text)) if text else None
        if verdict is None or verdict.code != 0 or "forbidden" in text.lower():
            failures.append(
                f"{name} {extra}: verdict {verdict and verdict.code} {verdict and verdict.sentence}"
            )
    heal = subprocess.run(
        [sys.executable, "-c", "from chaosstream.cli import run; run()", "heal", "--expired-only"],
        env=dict(sandbox.environ(KUBECONFIG=str(kubeconfig)), PYTHONPATH=os.environ.get("PYTHONPATH", "")),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if heal.returncode != 0:
        failures.append(f"chaosstream heal --expired-only: {heal.stderr}")
    return failures


def test_every_experiment_runs_as_the_cronjob_service_account_with_nothing_unused(sandbox_factory, tmp_path):
    calls = set()
    failures = []
    for agents, runs in ((1, SINGLE_AGENT_RUNS), (3, [("multi-agent-failover.json", {})])):
        sandbox = sandbox_factory(agents=agents)
        admin = sandbox.env["KUBECONFIG"]
        kubeconfig = service_account_kubeconfig(admin, tmp_path / f"sa-{agents}.kubeconfig")
        failures += _run_all(sandbox, runs, tmp_path, kubeconfig)
        calls |= used(trace(admin).get(USER, []))
    assert not failures, "\n".join(failures)
    grants = role_grants()
    refused = {c for c in calls if not any(
        g[0] == c[0] and g[1] == c[1] and (not g[2] or g[2] == c[2]) for g in grants
    )}  # fmt: skip
    assert not refused, f"calls the Role does not grant: {sorted(refused)}"
    assert not unused_grants(grants, calls), f"granted but never used: {sorted(unused_grants(grants, calls))}"
