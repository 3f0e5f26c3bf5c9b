"""The scheduled path for real: `kubectl apply -k deploy/kubernetes` (through an overlay that only sets
config.env for the sandbox) against the sandbox, trigger the CronJob: the shipped runner command runs as
the ServiceAccount with in-cluster configuration, ends with a verdict in the pod log, and the result
outlives the Job in a ConfigMap an SRE reads with kubectl."""

import base64
import gzip
import json
import os
import subprocess
import sys

import pytest
from helpers.deploy import apply_deploy
from helpers.openmetrics import validate_openmetrics
from helpers.rbac import kubectl

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox runs CronJob pods as root only"),
]


def trigger(sandbox, name, wait=300):
    return subprocess.run(
        [sys.executable, "-c", "from chaosstream.cli import run; run()", "sandbox", "trigger-cronjob", name,
         "--wait", str(wait), "--state-dir", str(sandbox.state_dir)],
        env=sandbox.environ(), capture_output=True, text=True, timeout=wait + 60,
    )  # fmt: skip


def test_the_cronjob_runs_end_to_end_and_keeps_its_result(shared_sandbox, tmp_path):
    applied = apply_deploy(shared_sandbox.env, tmp_path / "overlay")
    for kind in ("serviceaccount/", "role.rbac", "rolebinding.rbac", "configmap/chaosstream-config",
                 "cronjob.batch/chaosstream-agent-heartbeat", "cronjob.batch/chaosstream-reaper"):  # fmt: skip
        assert kind in applied, applied
    proc = trigger(shared_sandbox, "chaosstream-agent-heartbeat")
    log = proc.stdout
    assert proc.returncode == 0, log + proc.stderr
    assert "preflight: ready." in log
    assert "chaosstream-safety: run lock Lease streamspace/chaosstream-run-lock created" in log
    assert (
        "verdict: 0 passed" in log
        and "result saved: kubectl get cm -n streamspace chaosstream-result-" in log
    )
    assert log.strip().endswith("Complete")

    admin = shared_sandbox.env["KUBECONFIG"]
    listed = kubectl(admin, "get", "cm", "-n", "streamspace", "-l", "app.kubernetes.io/name=chaosstream-result",
                     "-L", "chaosstream.io/verdict")  # fmt: skip
    assert "chaosstream-result-1" in listed, listed
    verdict = kubectl(admin, "get", "cm", "-n", "streamspace", "chaosstream-result-1", "-o", "jsonpath={.data.verdict\\.txt}")  # fmt: skip
    assert verdict.strip().splitlines()[-1].startswith("verdict: 0 passed")
    packed = kubectl(admin, "get", "cm", "-n", "streamspace", "chaosstream-result-1", "-o", "jsonpath={.binaryData.journal\\.json\\.gz}")  # fmt: skip
    journal = json.loads(gzip.decompress(base64.b64decode(packed)))
    assert journal["status"] == "completed"
    junit = kubectl(admin, "get", "cm", "-n", "streamspace", "chaosstream-result-1", "-o", "jsonpath={.data.junit\\.xml}")  # fmt: skip
    assert "<testsuite" in junit
    # the `history --openmetrics` step: the run's metrics, valid OpenMetrics, kept with the result
    metrics = kubectl(admin, "get", "cm", "-n", "streamspace", "chaosstream-result-1", "-o", "jsonpath={.data.metrics\\.prom}")  # fmt: skip
    families = validate_openmetrics(metrics)
    ((labels, code),) = families["chaosstream_verdict_code"]
    assert code == 0.0 and 'verdict="passed"' in labels, families
    assert [v for _, v in families["chaosstream_run_passed"]] == [1.0]
    assert families["chaosstream_probe_measured_seconds"], families  # the run's measured durations
    assert "metrics: chaosstream history failed" not in log


def test_a_cronjob_whose_preflight_fails_injects_nothing_and_says_so(shared_sandbox, tmp_path):
    apply_deploy(shared_sandbox.env, tmp_path / "overlay", {"STREAMSPACE_PARTITION_DURATION": "sixty"})
    proc = trigger(shared_sandbox, "chaosstream-agent-heartbeat", wait=120)
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert "STREAMSPACE_PARTITION_DURATION='sixty'" in proc.stdout
    assert "verdict: 6 configuration" in proc.stdout and "chaos run" not in proc.stdout
    apply_deploy(shared_sandbox.env, tmp_path / "overlay")  # leave the shared sandbox as found
