"""The in-cluster reaper drill: the runner's whole process group AND its local dead-man reaper are
SIGKILLed (the CronJob's pod died) mid `total-agent-outage` and mid a network-policy partition; the
reaper CronJob of deploy/kubernetes, applied with `kubectl apply -k` and run by the sandbox on its
schedule (every minute) as the ServiceAccount, restores the replicas / deletes the policy within one
schedule period + 10 s of the fault's expiry."""

import json
import os
import signal
import time
from pathlib import Path
from typing import Optional

import psutil
import pytest
from helpers import EXPERIMENTS
from helpers.deploy import apply_deploy
from helpers.waits import wait_for

from drills._drill import PREVIOUS_REPLICAS, kube, scaled_down_expiry

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(400),
    pytest.mark.skipif(
        os.geteuid() != 0, reason="the sandbox runs CronJob pods (and partitions) as root only"
    ),
]

DURATION = 9  # outlasts the network-policy verification window (7.5 s with fast timers)
PERIOD = 60  # the reaper CronJob's schedule, "* * * * *"


def _kill_local_reapers(kubeconfig: str) -> int:
    """SIGKILL the detached dead-man reapers this sandbox's runs spawned (they died with the pod)."""
    killed = 0
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if (
                "chaosstream.faults.reaper" in " ".join(proc.info["cmdline"] or [])
                and proc.environ().get("KUBECONFIG") == kubeconfig
            ):
                proc.kill()
                killed += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return killed


def _kill_runner(proc, kubeconfig: str) -> int:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    return _kill_local_reapers(kubeconfig)


def _held(tmp_path: Path, name: str, action: str) -> Path:
    """The experiment with a pause after `action`, so the SIGKILL lands while the fault is in place."""
    experiment = json.loads((EXPERIMENTS / name).read_text())
    for activity in experiment["method"]:
        if activity["name"] == action:
            activity["pauses"] = {"after": 120}
    path = tmp_path / name
    path.write_text(json.dumps(experiment))
    return path


def _expiry(expires_at: str) -> float:
    from chaosstream.timeutil import parse_time

    return parse_time(expires_at).timestamp()


def test_reaper_cronjob_restores_replicas_after_the_runner_is_sigkilled(sandbox_factory, tmp_path):
    sandbox = sandbox_factory()
    apply_deploy(sandbox.env, tmp_path / "overlay")
    _, apps, _ = kube(sandbox)
    ns = sandbox.env["STREAMSPACE_NAMESPACE"]
    held = _held(tmp_path, "total-agent-outage.json", "scale-the-agents-to-zero")
    proc = sandbox.start_chaos_run(str(held), tmp_path / "journal.json", {"STREAMSPACE_PARTITION_DURATION": str(DURATION)})  # fmt: skip

    try:
        expires_at = wait_for(lambda: scaled_down_expiry(sandbox), 60, "the agents scaled to zero")
    finally:
        reapers = _kill_runner(proc, sandbox.env["KUBECONFIG"])
    assert reapers >= 1, "the runner spawned no local reaper to kill"

    def restored() -> bool:
        dep = apps.read_namespaced_deployment("streamspace-k8s-agent", ns)
        return dep.spec.replicas == 1 and PREVIOUS_REPLICAS not in (dep.metadata.annotations or {})

    expiry = _expiry(expires_at)
    wait_for(
        restored, max(1.0, expiry + PERIOD + 10 - time.time()), "replicas restored by the reaper CronJob", 0.2
    )
    late = time.time() - expiry
    print(f"\nreaper drill total-agent-outage: replicas restored {late:.1f}s after the fault's expiry")
    assert late <= PERIOD + 10


def test_reaper_cronjob_deletes_a_network_policy_after_the_runner_is_sigkilled(sandbox_factory, tmp_path):
    sandbox = sandbox_factory()
    apply_deploy(sandbox.env, tmp_path / "overlay")
    _, _, net = kube(sandbox)
    ns = sandbox.env["STREAMSPACE_NAMESPACE"]
    held = _held(tmp_path, "agent-heartbeat.json", "partition-the-agent-from-the-api")
    proc = sandbox.start_chaos_run(
        str(held), tmp_path / "journal.json",
        {"STREAMSPACE_PARTITION_DURATION": str(DURATION), "STREAMSPACE_PARTITION_METHOD": "network-policy"},
    )  # fmt: skip

    def policy() -> Optional[str]:
        items = net.list_namespaced_network_policy(
            ns, label_selector="app.kubernetes.io/managed-by=chaosstream"
        ).items
        return (items[0].metadata.annotations or {}).get("chaosstream.io/expires-at") if items else None

    try:
        expires_at = wait_for(policy, 60, "the partition's NetworkPolicy")
    finally:
        reapers = _kill_runner(proc, sandbox.env["KUBECONFIG"])
    assert reapers >= 1, "the runner spawned no local reaper to kill"
    expiry = _expiry(expires_at)
    wait_for(lambda: policy() is None, max(1.0, expiry + PERIOD + 10 - time.time()), "policy deleted by the reaper CronJob", 0.2)  # fmt: skip
    late = time.time() - expiry
    print(f"\nreaper drill network-policy: policy deleted {late:.1f}s after the fault's expiry")
    assert late <= PERIOD + 10
