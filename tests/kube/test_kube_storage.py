"""StorageClasses as a cluster has them: a claim naming a class the cluster lacks stays Pending, and so does
the pod that mounts it (unschedulable), as StreamSpace's persistent homes on EKS/AKS (StorageClass
`standard`, hard-coded in agents/k8s-agent/agent_k8s_operations.go:543)."""

from __future__ import annotations

from helpers.kube import pod_manifest
from helpers.waits import wait_for

from chaosstream.sandbox.kube import KubeEmulator


def _claim(name: str, storage_class: str | None) -> dict:
    spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": "default"}, "spec": spec}  # fmt: skip


def _pod_with(name: str, claim: str) -> dict:
    pod = pod_manifest(name)
    pod["spec"]["volumes"] = [{"name": "home", "persistentVolumeClaim": {"claimName": claim}}]
    return pod


def test_claims_bind_only_to_a_class_the_cluster_has(emu: KubeEmulator) -> None:
    emu.create_object({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "provisioner": "ebs.csi.aws.com",
                       "metadata": {"name": "gp2", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}})  # fmt: skip
    missing = emu.create_object(_claim("home-standard", "standard"))
    assert missing["status"]["phase"] == "Pending"
    defaulted = emu.create_object(_claim("home-default", None))
    assert defaulted["spec"]["storageClassName"] == "gp2" and defaulted["status"]["phase"] == "Bound"

    emu.create_object(_pod_with("stuck", "home-standard"), namespace="default")
    emu.create_object(_pod_with("runs", "home-default"), namespace="default")
    running = wait_for(
        lambda: (
            (emu.get_object("v1", "Pod", "default", "runs") or {}).get("status", {}).get("phase") == "Running"
        )
    )
    assert running
    stuck = emu.get_object("v1", "Pod", "default", "stuck")
    assert stuck["status"]["phase"] == "Pending" and not stuck["spec"].get("nodeName")
    scheduled = next(c for c in stuck["status"]["conditions"] if c["type"] == "PodScheduled")
    assert scheduled["status"] == "False" and scheduled["reason"] == "Unschedulable"


def test_a_pod_waits_for_a_claim_created_after_it(emu: KubeEmulator) -> None:
    """The agent creates the session Deployment before its PVC (agent_handlers.go:109-121): the scheduler
    retries until the claim exists and is bound."""
    emu.create_object({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "provisioner": "x",
                       "metadata": {"name": "standard"}})  # fmt: skip
    emu.create_object(_pod_with("early", "late-claim"), namespace="default")
    emu.create_object(_claim("late-claim", "standard"))
    wait_for(
        lambda: (
            (emu.get_object("v1", "Pod", "default", "early") or {}).get("status", {}).get("phase")
            == "Running"
        ),
        timeout=10,
    )
