"""Create/read/list/update/patch/delete semantics and Status errors through the real client."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest
from helpers.kube import deployment_manifest, pod_manifest
from helpers.waits import wait_for
from kubernetes import client
from kubernetes.client.rest import ApiException


def _status(err: ApiException) -> dict:
    return json.loads(err.body)


def test_create_fills_metadata_and_rejects_duplicates(core: client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    assert cm.metadata.namespace == "default" and cm.metadata.uid and cm.metadata.resource_version
    assert cm.metadata.creation_timestamp is not None and cm.metadata.generation == 1
    gen = core.create_namespaced_config_map("default", {"metadata": {"generateName": "cfg-"}})
    assert gen.metadata.name.startswith("cfg-") and len(gen.metadata.name) == len("cfg-") + 5
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}})
    assert err.value.status == 409 and _status(err.value)["reason"] == "AlreadyExists"
    assert _status(err.value)["message"] == 'configmaps "cfg" already exists'


def test_missing_namespace_and_object_are_404(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert err.value.status == 404 and _status(err.value)["details"]["kind"] == "namespaces"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("ghost", "default")
    body = _status(err.value)
    assert (err.value.status, body["reason"], body["message"]) == (404, "NotFound", 'pods "ghost" not found')
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("ghost", "default")
    assert _status(err.value)["message"] == 'deployments.apps "ghost" not found'


def test_namespaces_and_cluster_scoped(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "streamspace"}})
    ns = core.read_namespace("streamspace")
    assert ns.status.phase == "Active"
    assert {"default", "streamspace"} <= {n.metadata.name for n in core.list_namespace().items}
    assert core.list_node().items[0].metadata.name == "sandbox-node"
    core.create_namespaced_secret("streamspace", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    secret = core.read_namespaced_secret("s", "streamspace")
    assert base64.b64decode(secret.data["k"]) == b"v" and secret.type == "Opaque"


def test_label_and_field_selectors(core: client.CoreV1Api) -> None:
    for name, labels in [("a", {"app": "web", "tier": "fe"}), ("b", {"app": "web"}), ("c", {"app": "db"})]:
        core.create_namespaced_pod("default", pod_manifest(name, labels))

    def names(**kw: str) -> list[str]:
        return sorted(p.metadata.name for p in core.list_namespaced_pod("default", **kw).items)

    assert names(label_selector="app=web") == ["a", "b"]
    assert names(label_selector="app==web,tier") == ["a"]
    assert names(label_selector="app!=web") == ["c"]
    assert names(label_selector="app in (db, other)") == ["c"]
    assert names(label_selector="app notin (db),!tier") == ["b"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.namespace=default,metadata.name!=a") == ["b", "c"]
    wait_for(lambda: all(p.status.phase == "Running" for p in core.list_namespaced_pod("default").items))
    assert names(field_selector="status.phase=Running") == ["a", "b", "c"]
    assert names(field_selector="status.phase=Pending") == []
    assert [p.metadata.name for p in core.list_pod_for_all_namespaces(label_selector="tier=fe").items] == [
        "a"
    ]
    listed = core.list_namespaced_pod("default")
    assert int(listed.metadata.resource_version) > 0


@pytest.mark.parametrize("selector", ["app=(web", "app in web", "=web", "app=we b", "!"])
def test_malformed_label_selector_is_400(core: client.CoreV1Api, selector: str) -> None:
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod("default", label_selector=selector)
    assert err.value.status == 400 and _status(err.value)["reason"] == "BadRequest"


def test_unsupported_field_selector_is_400(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod("default", field_selector="spec.bogus=1")
    assert err.value.status == 400 and "field label not supported" in _status(err.value)["message"]


def test_limit_and_continue(core: client.CoreV1Api) -> None:
    for i in range(5):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"cm{i}"}})
    first = core.list_namespaced_config_map("default", limit=2)
    assert [c.metadata.name for c in first.items] == [
        "cm0",
        "cm1",
    ] and first.metadata.remaining_item_count == 3
    rest = core.list_namespaced_config_map("default", limit=10, _continue=first.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["cm2", "cm3", "cm4"] and not rest.metadata._continue


def test_put_conflict_and_generation(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", deployment_manifest("web"))
    # let the controllers settle first: they write status too, which moves the resourceVersion
    d = wait_for(
        lambda: (x := apps.read_namespaced_deployment("web", "default")).status.available_replicas and x
    )
    stale_rv = d.metadata.resource_version
    d.spec.replicas = 2
    updated = apps.replace_namespaced_deployment("web", "default", d)
    assert updated.metadata.generation == 2
    d.metadata.resource_version = stale_rv
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment("web", "default", d)
    assert err.value.status == 409 and _status(err.value)["reason"] == "Conflict"
    # metadata-only change: no generation bump
    patched = apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "y"}}})
    assert patched.metadata.generation == 2 and patched.metadata.labels["x"] == "y"


def test_status_subresource_semantics(api: client.ApiClient, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", deployment_manifest("web"))
    wait_for(lambda: apps.read_namespaced_deployment("web", "default").status.observed_generation == 1)
    # writing status through the main resource is ignored
    apps.patch_namespaced_deployment("web", "default", {"status": {"replicas": 99}})
    assert apps.read_namespaced_deployment("web", "default").status.replicas != 99
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(
        "stream.space",
        "v1alpha1",
        "default",
        "sessions",
        {
            "apiVersion": "stream.space/v1alpha1",
            "kind": "Session",
            "metadata": {"name": "s1"},
            "spec": {"user": "u", "template": "t", "state": "running"},
        },
    )
    custom.patch_namespaced_custom_object_status(
        "stream.space",
        "v1alpha1",
        "default",
        "sessions",
        "s1",
        {"status": {"phase": "Running"}, "spec": {"state": "hibernated"}},
    )
    s = custom.get_namespaced_custom_object("stream.space", "v1alpha1", "default", "sessions", "s1")
    assert (
        s["status"] == {"phase": "Running"} and s["spec"]["state"] == "running"
    )  # /status changes only status
    custom.patch_namespaced_custom_object(
        "stream.space",
        "v1alpha1",
        "default",
        "sessions",
        "s1",
        {"spec": {"state": "hibernated"}, "status": {"phase": "Failed"}},
    )
    s = custom.get_namespaced_custom_object("stream.space", "v1alpha1", "default", "sessions", "s1")
    assert s["status"] == {"phase": "Running"} and s["spec"]["state"] == "hibernated"
    assert s["metadata"]["generation"] == 2
    items = custom.list_namespaced_custom_object("stream.space", "v1alpha1", "default", "sessions")
    assert items["kind"] == "SessionList" and [i["metadata"]["name"] for i in items["items"]] == ["s1"]


def test_patch_types(core: client.CoreV1Api, api: client.ApiClient) -> None:
    core.create_namespaced_pod("default", pod_manifest("p", {"app": "p", "drop": "me"}))
    core.patch_namespaced_pod(
        "p",
        "default",
        [
            {"op": "add", "path": "/metadata/labels/new", "value": "1"},
            {"op": "remove", "path": "/metadata/labels/drop"},
        ],
    )
    core.patch_namespaced_pod(
        "p",
        "default",
        {"metadata": {"labels": {"merge": "2", "new": None}}},
        _content_type="application/merge-patch+json",
    )
    labels = core.read_namespaced_pod("p", "default").metadata.labels
    assert labels == {"app": "p", "merge": "2"}
    # the client refuses to encode unknown content types itself, so send this one raw
    req = urllib.request.Request(
        api.configuration.host + "/api/v1/namespaces/default/pods/p",
        method="PATCH",
        data=b"<x/>",
        headers={"Content-Type": "application/xml"},
    )
    with pytest.raises(urllib.error.HTTPError) as http_err:
        urllib.request.urlopen(req)
    assert http_err.value.code == 415
    assert json.loads(http_err.value.read())["reason"] == "UnsupportedMediaType"
    with pytest.raises(ApiException) as err:  # a failing RFC 6902 test op
        core.patch_namespaced_pod("p", "default", [{"op": "test", "path": "/metadata/name", "value": "q"}])
    assert err.value.status == 422
    # strategic merge is not accepted for custom resources
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(
        "stream.space",
        "v1alpha1",
        "default",
        "templates",
        {
            "apiVersion": "stream.space/v1alpha1",
            "kind": "Template",
            "metadata": {"name": "t"},
            "spec": {"displayName": "T"},
        },
    )
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(
            "stream.space",
            "v1alpha1",
            "default",
            "templates",
            "t",
            {"spec": {}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert err.value.status == 415


def test_strategic_merge_patch_lists(apps: client.AppsV1Api) -> None:
    manifest = deployment_manifest("web")
    c = manifest["spec"]["template"]["spec"]["containers"][0]
    c.update(
        env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        ports=[{"containerPort": 80}],
        volumeMounts=[{"name": "v", "mountPath": "/data"}],
    )
    manifest["spec"]["template"]["spec"]["volumes"] = [{"name": "v", "emptyDir": {}}]
    apps.create_namespaced_deployment("default", manifest)
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "env": [{"name": "B", "value": "3"}, {"name": "A", "$patch": "delete"}],
                            "ports": [{"containerPort": 443}],
                            "volumeMounts": [{"name": "w", "mountPath": "/cache"}],
                        },
                        {"name": "side", "image": "busybox:1.36"},
                    ],
                    "volumes": [{"name": "w", "emptyDir": {}}],
                }
            }
        }
    }
    d = apps.patch_namespaced_deployment("web", "default", patch)
    spec = d.spec.template.spec
    assert [c.name for c in spec.containers] == ["main", "side"]
    main = spec.containers[0]
    assert [(e.name, e.value) for e in main.env] == [("B", "3")]
    assert [p.container_port for p in main.ports] == [80, 443]
    assert [m.mount_path for m in main.volume_mounts] == ["/data", "/cache"]
    assert [v.name for v in spec.volumes] == ["v", "w"]
    d = apps.patch_namespaced_deployment(
        "web",
        "default",
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "busybox:1.36"}]}
                }
            }
        },
    )
    assert [c.name for c in d.spec.template.spec.containers] == ["only"]


def test_delete_finalizers_and_collection(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "held", "finalizers": ["x/y"]}})
    core.delete_namespaced_config_map("held", "default")
    held = core.read_namespaced_config_map("held", "default")
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", "default", [{"op": "remove", "path": "/metadata/finalizers"}])
    wait_for(
        lambda: "held" not in [c.metadata.name for c in core.list_namespaced_config_map("default").items]
    )
    for i in range(3):
        core.create_namespaced_config_map(
            "default", {"metadata": {"name": f"c{i}", "labels": {"g": str(i % 2)}}}
        )
    status = core.delete_collection_namespaced_config_map("default", label_selector="g=0")
    assert status.status == "Success"
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == ["c1"]
    gone = core.delete_namespaced_config_map("c1", "default")
    assert gone["status"] == "Success" and gone["details"]["name"] == "c1"


def test_validation_errors_are_422(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("default", {"metadata": {"name": "Bad_Name"}, "spec": {"containers": []}})
    assert err.value.status == 422 and _status(err.value)["reason"] == "Invalid"
    bad = deployment_manifest("web")
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_deployment("default", bad)
    assert err.value.status == 422 and "selector" in _status(err.value)["message"]


def test_method_not_allowed(emu) -> None:
    req = urllib.request.Request(emu.url + "/api/v1/namespaces/default/pods", method="PUT", data=b"{}")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    assert err.value.code == 405 and json.loads(err.value.read())["reason"] == "MethodNotAllowed"


def test_network_policy_lifecycle(api: client.ApiClient) -> None:
    net = client.NetworkingV1Api(api)
    net.create_namespaced_network_policy(
        "default",
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": []},
        },
    )
    assert [p.metadata.name for p in net.list_namespaced_network_policy("default").items] == ["deny"]
    net.delete_namespaced_network_policy("deny", "default")
    assert net.list_namespaced_network_policy("default").items == []
