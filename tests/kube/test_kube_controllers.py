"""Deployment/ReplicaSet/StatefulSet controllers, pod lifecycle, graceful deletion and events."""

from __future__ import annotations

import time

import pytest
from helpers.kube import RecordingRuntime, deployment_manifest, pod_manifest
from helpers.waits import wait_for
from kubernetes import client
from kubernetes.client.rest import ApiException


def _pods(core: client.CoreV1Api, selector: str) -> list:
    return core.list_namespaced_pod("default", label_selector=selector).items


def _available(apps: client.AppsV1Api, name: str, replicas: int) -> bool:
    st = apps.read_namespaced_deployment(name, "default").status
    return (
        (st.available_replicas or 0) == replicas
        and st.updated_replicas == replicas
        and st.replicas == replicas
    )


def test_deployment_creates_replicaset_and_pods(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    d = apps.create_namespaced_deployment("default", deployment_manifest("web", replicas=3))
    wait_for(lambda: _available(apps, "web", 3))
    rs = apps.list_namespaced_replica_set("default", label_selector="app=web").items
    assert len(rs) == 1
    h = rs[0].metadata.labels["pod-template-hash"]
    assert rs[0].metadata.name == f"web-{h}"
    assert (
        rs[0].metadata.owner_references[0].uid == d.metadata.uid
        and rs[0].metadata.owner_references[0].controller
    )
    pods = _pods(core, "app=web")
    assert len(pods) == 3
    for p in pods:
        assert p.metadata.name.startswith(f"web-{h}-") and len(p.metadata.name) == len(f"web-{h}-") + 5
        assert p.metadata.labels["pod-template-hash"] == h
        assert p.metadata.owner_references[0].name == rs[0].metadata.name
        assert p.spec.node_name == "sandbox-node" and p.status.phase == "Running" and p.status.pod_ip
        conds = {c.type: c.status for c in p.status.conditions}
        assert conds["Ready"] == "True" and conds["ContainersReady"] == "True"
        assert p.status.container_statuses[0].ready and p.status.container_statuses[0].restart_count == 0
        assert p.status.container_statuses[0].state.running is not None
    st = apps.read_namespaced_deployment("web", "default").status
    assert st.observed_generation == 1 and st.ready_replicas == 3 and not st.unavailable_replicas
    conds = {c.type: c for c in st.conditions}
    assert conds["Available"].status == "True"
    assert conds["Progressing"].reason == "NewReplicaSetAvailable"


def test_scale_subresource_and_replacement(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", deployment_manifest("web", replicas=1))
    wait_for(lambda: _available(apps, "web", 1))
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert scale.spec.replicas == 1 and "app=web" in scale.status.selector
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    wait_for(lambda: _available(apps, "web", 3))
    assert len(_pods(core, "app=web")) == 3
    victim = _pods(core, "app=web")[0].metadata.name
    core.delete_namespaced_pod(victim, "default")
    wait_for(lambda: victim not in [p.metadata.name for p in _pods(core, "app=web")])
    wait_for(lambda: len([p for p in _pods(core, "app=web") if p.status.phase == "Running"]) == 3)
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 1}})
    wait_for(lambda: len(_pods(core, "app=web")) == 1 and _available(apps, "web", 1))


@pytest.mark.parametrize("kubelet", [RecordingRuntime(ready_delay=0.3)], indirect=False)
def test_rolling_restart_surges_one_pod(
    core: client.CoreV1Api, apps: client.AppsV1Api, kubelet: RecordingRuntime
) -> None:
    apps.create_namespaced_deployment("default", deployment_manifest("agent", replicas=1))
    wait_for(lambda: _available(apps, "agent", 1))
    old = _pods(core, "app=agent")[0].metadata.name
    apps.patch_namespaced_deployment(
        "agent",
        "default",
        {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}
                }
            }
        },
    )
    # maxSurge 25% of 1 rounds up to 1, maxUnavailable rounds down to 0: the new pod comes first
    wait_for(lambda: len(_pods(core, "app=agent")) == 2)
    assert {p.metadata.name for p in _pods(core, "app=agent")} >= {old}
    wait_for(lambda: ("stop", old, 30) in kubelet.calls, timeout=5)
    wait_for(lambda: _available(apps, "agent", 1) and len(_pods(core, "app=agent")) == 1)
    new = _pods(core, "app=agent")[0].metadata.name
    assert new != old
    starts = [c[1] for c in kubelet.calls if c[0] == "start"]
    assert starts.index(new) > starts.index(old)
    # when the old pod was being stopped, the new one was already Ready
    assert kubelet.snapshots[old][new] is True
    assert len(apps.list_namespaced_replica_set("default", label_selector="app=agent").items) == 2
    d = apps.read_namespaced_deployment("agent", "default")
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    assert d.status.observed_generation == d.metadata.generation == 2
    reasons = [
        e.message
        for e in core.list_namespaced_event("default", field_selector="involvedObject.name=agent").items
        if e.reason == "ScalingReplicaSet"
    ]
    assert any("Scaled up" in m for m in reasons) and any(
        "Scaled down" in m and "from 1 to 0" in m for m in reasons
    )


@pytest.mark.parametrize("kubelet", [RecordingRuntime(ready_delay=0.1)], indirect=False)
def test_recreate_strategy_stops_old_first(
    core: client.CoreV1Api, apps: client.AppsV1Api, kubelet: RecordingRuntime
) -> None:
    apps.create_namespaced_deployment("default", deployment_manifest("rc", 2, {"type": "Recreate"}))
    wait_for(lambda: _available(apps, "rc", 2))
    old = {p.metadata.name for p in _pods(core, "app=rc")}
    apps.patch_namespaced_deployment(
        "rc",
        "default",
        {
            "spec": {
                "template": {
                    "metadata": {
                        "labels": {"v": "2"},
                    }
                }
            }
        },
    )
    wait_for(lambda: _available(apps, "rc", 2) and not old & {p.metadata.name for p in _pods(core, "app=rc")})
    order = [(c[0], c[1]) for c in kubelet.calls if c[0] in ("start", "stop")]
    last_stop = max(i for i, (kind, name) in enumerate(order) if kind == "stop" and name in old)
    first_new = min(i for i, (kind, name) in enumerate(order) if kind == "start" and name not in old)
    assert last_stop < first_new


@pytest.mark.parametrize("kubelet", [RecordingRuntime(stop_delay=0.4)], indirect=False)
def test_graceful_deletion_honours_grace_period(core: client.CoreV1Api, kubelet: RecordingRuntime) -> None:
    core.create_namespaced_pod("default", pod_manifest("g1", terminationGracePeriodSeconds=7))
    core.create_namespaced_pod("default", pod_manifest("g2"))
    core.create_namespaced_pod("default", pod_manifest("g3"))
    wait_for(lambda: all(p.status.phase == "Running" for p in core.list_namespaced_pod("default").items))
    deleted = core.delete_namespaced_pod("g1", "default")
    assert (
        deleted.metadata.deletion_timestamp is not None
        and deleted.metadata.deletion_grace_period_seconds == 7
    )
    assert core.read_namespaced_pod("g1", "default").metadata.deletion_timestamp is not None  # Terminating
    core.delete_namespaced_pod("g2", "default", body=client.V1DeleteOptions(grace_period_seconds=2))
    t0 = time.monotonic()
    core.delete_namespaced_pod("g3", "default", grace_period_seconds=0)
    with pytest.raises(ApiException):  # force: gone from the API at once
        core.read_namespaced_pod("g3", "default")
    assert time.monotonic() - t0 < 0.3
    wait_for(lambda: not core.list_namespaced_pod("default").items)
    stops = {c[1]: c[2] for c in kubelet.calls if c[0] == "stop"}
    assert stops == {"g1": 7, "g2": 2, "g3": 0}
    reasons = {(e.involved_object.name, e.reason) for e in core.list_namespaced_event("default").items}
    assert {("g1", "Scheduled"), ("g1", "Started"), ("g1", "Killing"), ("g1", "Created")} <= reasons


def test_container_exit_restarts_or_finishes(emu, core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod_manifest("crash"))
    core.create_namespaced_pod("default", pod_manifest("job", restartPolicy="Never"))
    wait_for(lambda: all(p.status.phase == "Running" for p in core.list_namespaced_pod("default").items))
    emu.container_exited("default", "crash", "main", 2)
    pod = core.read_namespaced_pod("crash", "default")
    cs = pod.status.container_statuses[0]
    assert cs.restart_count == 1 and cs.last_state.terminated.exit_code == 2 and not cs.ready
    wait_for(lambda: core.read_namespaced_pod("crash", "default").status.container_statuses[0].ready)
    emu.container_exited("default", "job", "main", 0)
    job = core.read_namespaced_pod("job", "default")
    assert (
        job.status.phase == "Succeeded" and job.status.container_statuses[0].state.terminated.exit_code == 0
    )


def test_start_failure_marks_pod_failed_and_rs_replaces(
    core: client.CoreV1Api, kubelet: RecordingRuntime
) -> None:
    core.create_namespaced_pod("default", pod_manifest("bad", {"fail": "start"}))
    pod = wait_for(lambda: (p := core.read_namespaced_pod("bad", "default")).status.phase == "Failed" and p)
    assert pod.status.message == "image pull failed: no such image"
    core.create_namespaced_pod("default", pod_manifest("fixed", {"fixed-ip": "1"}))
    wait_for(lambda: core.read_namespaced_pod("fixed", "default").status.pod_ip == "169.254.1.5")


def test_statefulset_ordered_pods(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 3,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "pg", "image": "postgres:16"}]},
            },
        },
    }
    apps.create_namespaced_stateful_set("default", sts)
    wait_for(lambda: apps.read_namespaced_stateful_set("db", "default").status.ready_replicas == 3)
    assert sorted(p.metadata.name for p in _pods(core, "app=db")) == ["db-0", "db-1", "db-2"]
    core.delete_namespaced_pod("db-1", "default")
    wait_for(
        lambda: (
            (p := core.read_namespaced_pod("db-1", "default")).status.phase == "Running"
            and p.metadata.deletion_timestamp is None
        )
    )
    apps.patch_namespaced_stateful_set_scale("db", "default", {"spec": {"replicas": 1}})
    wait_for(lambda: [p.metadata.name for p in _pods(core, "app=db")] == ["db-0"])


def test_eviction_and_disruption_budget(api: client.ApiClient, core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod_manifest("ev", {"app": "ev"}))
    core.create_namespaced_pod("default", pod_manifest("guarded", {"app": "guarded"}))
    wait_for(
        lambda: (
            all(p.status.phase == "Running" for p in core.list_namespaced_pod("default").items)
            and all(
                c.status == "True"
                for p in core.list_namespaced_pod("default").items
                for c in p.status.conditions
                if c.type == "Ready"
            )
        )
    )
    client.PolicyV1Api(api).create_namespaced_pod_disruption_budget(
        "default",
        {
            "metadata": {"name": "pdb"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}},
        },
    )
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "ev", "namespace": "default"}}
    core.create_namespaced_pod_eviction("ev", "default", body)
    wait_for(lambda: "ev" not in [p.metadata.name for p in core.list_namespaced_pod("default").items])
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction("guarded", "default", dict(body, metadata={"name": "guarded"}))
    assert err.value.status == 429
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction("ghost", "default", dict(body, metadata={"name": "ghost"}))
    assert err.value.status == 404


def test_deleting_deployment_cascades_and_namespace_termination(
    core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    core.create_namespace({"metadata": {"name": "streamspace"}})
    apps.create_namespaced_deployment("streamspace", deployment_manifest("x", replicas=2))
    wait_for(lambda: len(core.list_namespaced_pod("streamspace").items) == 2)
    apps.delete_namespaced_deployment("x", "streamspace")
    wait_for(
        lambda: (
            not core.list_namespaced_pod("streamspace").items
            and not apps.list_namespaced_replica_set("streamspace").items
        )
    )
    core.create_namespaced_config_map("streamspace", {"metadata": {"name": "c"}})
    core.delete_namespace("streamspace")
    wait_for(lambda: "streamspace" not in [n.metadata.name for n in core.list_namespace().items])


def test_events_tell_the_story(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", deployment_manifest("web", replicas=1))
    wait_for(lambda: _available(apps, "web", 1))
    events = core.list_namespaced_event("default").items
    by_reason = {e.reason: e for e in events}
    assert {"ScalingReplicaSet", "SuccessfulCreate", "Scheduled", "Started"} <= set(by_reason)
    sc = by_reason["ScalingReplicaSet"]
    assert sc.involved_object.kind == "Deployment" and sc.source.component == "deployment-controller"
    assert sc.count == 1 and sc.first_timestamp is not None and sc.type == "Normal"
    assert by_reason["SuccessfulCreate"].involved_object.kind == "ReplicaSet"
