"""kubectl against the emulator (skipped when kubectl is not installed)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from helpers.waits import wait_for

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: main, image: busybox:1.36}]}
"""


def test_kubectl_story(emu, kubeconfig: str) -> None:
    def k(*args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        proc = subprocess.run(
            [KUBECTL, "--kubeconfig", kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc

    k("create", "-f", "-", stdin=MANIFEST)  # validation passes through the /openapi/v3 stub
    wait_for(lambda: k("get", "pods", "-l", "app=web").stdout.count("Running") == 2)
    table = k("get", "pods", "-l", "app=web").stdout
    assert table.split("\n")[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] and "1/1" in table
    before = set(k("get", "pods", "-o", "name").stdout.split())
    k("rollout", "restart", "deployment/web")
    k("rollout", "status", "deployment/web", "--timeout=10s")
    wait_for(
        lambda: (
            not before & set(k("get", "pods", "-o", "name").stdout.split())
            and len(k("get", "pods", "-o", "name").stdout.split()) == 2
        )
    )
    pod = k("get", "pods", "-o", "name").stdout.split()[0].split("/")[1]
    wait_for(lambda: "Running" in k("get", "pod", pod).stdout)
    proc = k("exec", pod, "--", "echo", "from", "kubectl")
    assert proc.stdout == "from kubectl\n"
    failed = k("exec", pod, "--", "fail", "5", ok=False)
    assert failed.returncode == 5 and "boom" in failed.stderr
    missing = k("exec", pod, "-c", "nope", "--", "echo", ok=False)
    assert missing.returncode != 0 and "container nope is not valid" in missing.stderr
    k("delete", "pod", pod)
    assert k("get", "pod", pod, ok=False).returncode != 0
    events = k("get", "events").stdout
    assert events.split("\n")[0].split()[:4] == ["LAST", "SEEN", "TYPE", "REASON"]
    for reason in (
        "ScalingReplicaSet",
        "SuccessfulCreate",
        "SuccessfulDelete",
        "Scheduled",
        "Started",
        "Killing",
    ):
        assert reason in events
    k("scale", "deployment/web", "--replicas=1")
    wait_for(
        lambda: (
            k("get", "deploy", "web", "-o", "jsonpath={.status.availableReplicas}/{.status.replicas}").stdout
            == "1/1"
        )
    )
