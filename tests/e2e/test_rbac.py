"""Least privilege, proven: every experiment (and `chaosstream heal`, the reaper) runs as the CronJob's
ServiceAccount against the sandbox's RBAC-enforcing Kubernetes API. No call is refused, and the
recorded trace of calls uses every rule deploy/kubernetes/rbac.yaml grants (nothing unused)."""

import json
import os
import subprocess
import sys

import pytest
import yaml
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


def _controls(tmp_path):
    """experiments/controls.yaml with a 3 s lease, so that even a short run renews it (every 1 s)."""
    controls = yaml.safe_load((EXPERIMENTS / "controls.yaml").read_text())
    controls["chaosstream-safety"]["provider"].setdefault("arguments", {})["lease_duration"] = 3
    path = tmp_path / "controls.yaml"
    path.write_text(yaml.safe_dump(controls))
    return path


def _python(sandbox, kubeconfig, code, timeout=120):
    return subprocess.run(
        [sys.executable, "-c", code],
        env=dict(sandbox.environ(KUBECONFIG=str(kubeconfig)), PYTHONPATH=os.environ.get("PYTHONPATH", "")),
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def _runner_died(sandbox, kubeconfig):
    """A network-policy partition whose runner is gone: the detached local reaper removes it at expiry."""
    made = _python(
        sandbox,
        kubeconfig,
        "from chaosstream.actions import partition_agent; import json; "
        "print(json.dumps(partition_agent(method='network-policy', duration=9)))",
    )
    if made.returncode != 0:
        return [f"partition_agent(network-policy): {made.stderr[-2000:]}"]
    gone = _python(
        sandbox,
        kubeconfig,
        "import time\nfrom chaosstream.clients.kube import Cluster\nc = Cluster(None)\n"
        "for _ in range(300):\n"
        "    if not c.networking.list_namespaced_network_policy('streamspace').items: break\n"
        "    time.sleep(0.1)\nelse: raise SystemExit('the local reaper did not remove the policy')",
    )
    return [] if gone.returncode == 0 else [f"local reaper: {gone.stderr[-2000:]}"]


def _run_all(sandbox, runs, tmp_path, kubeconfig):
    failures = []
    controls = _controls(tmp_path)
    for i, (name, extra) in enumerate(runs):
        journal = tmp_path / f"journal-{i}.json"
        env = sandbox.environ(KUBECONFIG=str(kubeconfig), **extra)
        chaos(
            *run_args(EXPERIMENTS / name, journal, control_file=controls),
            env=env, cwd=ROOT, timeout=400,
        )  # fmt: skip
        text = journal.read_text() if journal.exists() else ""
        verdict = evaluate(json.loads(text)) if text else None
        # What matters here is permission: every activity ran (0), or ran and measured a timing past its
        # objective on a loaded machine (1: e.g. a reconnect landing on the agent's longest backoff step).
        # A refusal reads as 3, 5 or 6, and its text says forbidden.
        if verdict is None or verdict.code not in (0, 1) or "forbidden" in text.lower():
            failures.append(
                f"{name} {extra}: verdict {verdict and verdict.code} {verdict and verdict.sentence}"
            )
    verdict_file = tmp_path / "verdict.txt"
    verdict_file.write_text("verdict: 0 passed\n")
    for _ in range(10):  # the ring of 5 result ConfigMaps: 5 creates, then each oldest is overwritten
        saved = _python(
            sandbox,
            kubeconfig,
            "from chaosstream.cli import run; import sys; sys.argv[1:] = ['save-result', '--verdict-file', "
            f"'{verdict_file}', '--code', '0', '{tmp_path / 'journal-0.json'}']; run()",
        )
        if saved.returncode != 0:
            failures.append(f"chaosstream save-result: {saved.stderr[-2000:]}")
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
    passes = (
        ({"agents": 1}, SINGLE_AGENT_RUNS),
        ({"agents": 3}, [("multi-agent-failover.json", {})]),
        # HA agents: the leader is read from its Lease before the kill and by count_standbys
        ({"agents": 1, "agent_replicas": 3}, [("multi-agent-failover.json", {})]),
    )
    for i, (shape, runs) in enumerate(passes):
        sandbox = sandbox_factory(**shape)
        admin = sandbox.env["KUBECONFIG"]
        kubeconfig = service_account_kubeconfig(admin, tmp_path / f"sa-{i}.kubeconfig")
        failures += _run_all(sandbox, runs, tmp_path, kubeconfig)
        if i == 0:
            failures += _runner_died(sandbox, kubeconfig)
        calls |= used(trace(admin).get(USER, []))
    assert not failures, "\n".join(failures)
    grants = role_grants()
    refused = {c for c in calls if not any(
        g[0] == c[0] and g[1] == c[1] and (not g[2] or g[2] == c[2]) for g in grants
    )}  # fmt: skip
    assert not refused, f"calls the Role does not grant: {sorted(refused)}"
    assert not unused_grants(grants, calls), f"granted but never used: {sorted(unused_grants(grants, calls))}"
