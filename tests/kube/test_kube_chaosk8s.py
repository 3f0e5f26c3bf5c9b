"""chaostoolkit-kubernetes activities against the emulator.

chaosk8s loads the kubeconfig through ``kubernetes.config``, which reads ``KUBECONFIG`` when it is first
imported; the activities therefore run in a subprocess whose environment points at our kubeconfig.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from helpers.kube import deployment_manifest
from helpers.waits import wait_for
from kubernetes import client

SCRIPT = textwrap.dedent("""
    import json
    from chaosk8s.deployment.actions import rollout_deployment
    from chaosk8s.deployment.probes import deployment_available_and_healthy
    from chaosk8s.networking.actions import create_network_policy, remove_network_policy
    from chaosk8s.pod.actions import exec_in_pods, terminate_pods
    from chaosk8s.pod.probes import pods_in_phase

    out = {}
    out["healthy"] = deployment_available_and_healthy("web", "default")
    out["in_phase"] = pods_in_phase("app=web", "Running", "default")
    out["missing"] = deployment_available_and_healthy("ghost", "default", raise_on_unavailable=False)
    out["exec"] = exec_in_pods("echo hello", label_selector="app=web", ns="default", qty=2,
                               container_name="main")
    out["exec_fail"] = exec_in_pods(["fail", "4"], label_selector="app=web", ns="default", qty=1,
                                    container_name="main")
    create_network_policy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                           "metadata": {"name": "deny-agent"},
                           "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                                    "egress": []}}, ns="default")
    out["policy_created"] = True
    open(__import__("sys").argv[1], "w").write("policy")
    import time
    time.sleep(0.3)
    remove_network_policy("deny-agent", ns="default")
    out["terminated"] = list(terminate_pods(label_selector="app=web", ns="default", qty=1) or [])
    rollout_deployment("web", "default")
    print(json.dumps(out, default=str))
""")


def test_chaosk8s_activities(
    emu, kubeconfig: str, apps: client.AppsV1Api, core: client.CoreV1Api, tmp_path
) -> None:
    apps.create_namespaced_deployment("default", deployment_manifest("web", replicas=2))
    wait_for(lambda: (apps.read_namespaced_deployment("web", "default").status.available_replicas or 0) == 2)
    before = {p.metadata.name for p in core.list_namespaced_pod("default", label_selector="app=web").items}
    env = dict(os.environ, KUBECONFIG=kubeconfig, HOME=str(tmp_path))
    env.pop("KUBERNETES_HOST", None)
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(marker)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # while the subprocess sleeps, the network policy it created exists
    wait_for(marker.exists, timeout=20)
    assert emu.get_object("networking.k8s.io/v1", "NetworkPolicy", "default", "deny-agent") is not None
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    out = json.loads(stdout.strip().splitlines()[-1])
    assert out["healthy"] is True and out["in_phase"] is True and out["missing"] is False
    assert [r["exit_code"] for r in out["exec"]] == [0, 0]
    assert all(r["stdout"] == "hello\n" for r in out["exec"])
    assert str(out["exec_fail"][0]["exit_code"]) == "4"
    assert emu.get_object("networking.k8s.io/v1", "NetworkPolicy", "default", "deny-agent") is None
    assert out["terminated"][0] in before
    d = apps.read_namespaced_deployment("web", "default")
    assert "kubectl.kubernetes.io/restartedAt" in d.spec.template.metadata.annotations
    # the rollout replaces both pods and the deployment settles healthy again
    wait_for(
        lambda: (
            not before
            & {p.metadata.name for p in core.list_namespaced_pod("default", label_selector="app=web").items}
            and (
                (s := apps.read_namespaced_deployment("web", "default").status).updated_replicas == 2
                and s.available_replicas == 2
                and s.replicas == 2
            )
        ),
        timeout=10,
    )
