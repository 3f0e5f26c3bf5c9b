"""Discovery through the real client (which asks with trailing slashes) and raw HTTP."""

from __future__ import annotations

import json
import urllib.request

import pytest
from kubernetes import client


def test_version_and_core_discovery(api: client.ApiClient) -> None:
    info = client.VersionApi(api).get_code()
    assert (info.major, info.minor) == ("1", "32")
    assert info.git_version.startswith("v1.32")
    versions = client.CoreApi(api).get_api_versions()
    assert versions.versions == ["v1"]
    assert versions.server_address_by_client_cidrs[0].client_cidr == "0.0.0.0/0"


def test_groups_and_resource_lists(api: client.ApiClient) -> None:
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    assert {"apps", "networking.k8s.io", "policy", "stream.space"} <= set(groups)
    assert groups["stream.space"].preferred_version.group_version == "stream.space/v1alpha1"
    core = {r.name: r for r in client.CoreV1Api(api).get_api_resources().resources}
    assert core["pods"].namespaced and core["pods"].singular_name == "pod" and "watch" in core["pods"].verbs
    assert not core["nodes"].namespaced and not core["namespaces"].namespaced
    assert core["pods/eviction"].group == "policy" and core["pods/exec"].kind == "PodExecOptions"
    apps = {r.name: r for r in client.AppsV1Api(api).get_api_resources().resources}
    assert apps["deployments/scale"].kind == "Scale"
    assert client.AppsApi(api).get_api_group().name == "apps"


@pytest.mark.parametrize(
    "path",
    [
        "/version",
        "/version/",
        "/api",
        "/api/",
        "/apis",
        "/apis/",
        "/api/v1",
        "/api/v1/",
        "/apis/apps/v1/",
        "/apis/stream.space/v1alpha1",
        "/apis/stream.space",
        "/openapi/v2",
    ],
)
def test_paths_with_and_without_trailing_slash(emu, path: str) -> None:
    with urllib.request.urlopen(emu.url + path) as resp:
        assert resp.status == 200
        body = json.loads(resp.read())
    assert body


def test_unknown_group_is_404(emu) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(emu.url + "/apis/nope.io/v1")
    assert err.value.code == 404
    assert json.loads(err.value.read())["reason"] == "NotFound"


def test_crd_discovery(api: client.ApiClient) -> None:
    res = client.CustomObjectsApi(api).get_api_resources("stream.space", "v1alpha1")
    kinds = {r.name: r for r in res.resources}
    assert kinds["sessions"].kind == "Session" and kinds["sessions"].namespaced
    assert kinds["templates"].short_names == ["tpl"]
