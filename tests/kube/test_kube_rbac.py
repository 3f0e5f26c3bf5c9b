"""RBAC in the emulator, through the real kubernetes client: ServiceAccount tokens are authenticated,
Roles/ClusterRoles are enforced with Kubernetes' own 403 body, the admin stays all-powerful."""

import json

import pytest
import yaml
from helpers.kube import emulator
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

NS = "streamspace"


def _api(kubeconfig, token=None):
    if token is None:
        return config.new_client_from_config(config_file=str(kubeconfig))
    doc = yaml.safe_load(kubeconfig.read_text())
    doc["users"][0]["user"] = {"token": token}
    path = kubeconfig.with_name(f"sa-{token[-6:]}")
    path.write_text(yaml.safe_dump(doc))
    return config.new_client_from_config(config_file=str(path))


@pytest.fixture
def cluster(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    with emulator(kubeconfig, NS) as emu:
        admin = _api(kubeconfig)
        core = client.CoreV1Api(admin)
        core.create_namespaced_service_account(
            NS, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="runner"))
        )
        rbac = client.RbacAuthorizationV1Api(admin)
        rules = [
            client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"]),
            client.V1PolicyRule(api_groups=[""], resources=["pods/exec"], verbs=["get"]),
            client.V1PolicyRule(
                api_groups=["apps"], resources=["deployments"], verbs=["get"], resource_names=["agent"]
            ),
        ]
        rbac.create_namespaced_role(
            NS, client.V1Role(metadata=client.V1ObjectMeta(name="runner"), rules=rules)
        )
        rbac.create_namespaced_role_binding(
            NS,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="runner"),
                role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="runner"),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name="runner", namespace=NS)],
            ),
        )
        token = core.create_namespaced_service_account_token("runner", NS, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))).status.token  # fmt: skip
        yield emu, admin, _api(kubeconfig, token), kubeconfig


def _forbidden(call):
    with pytest.raises(ApiException) as info:
        call()
    assert info.value.status == 403
    return json.loads(info.value.body)


def test_a_service_account_gets_what_its_role_grants_and_kubernetes_403_for_the_rest(cluster):
    _, _, sa, _ = cluster
    core, apps = client.CoreV1Api(sa), client.AppsV1Api(sa)
    assert core.list_namespaced_pod(NS).items == []
    body = _forbidden(lambda: core.delete_namespaced_pod("x", NS))
    assert body["message"] == (
        'pods "x" is forbidden: User "system:serviceaccount:streamspace:runner" cannot delete resource "pods" '
        'in API group "" in the namespace "streamspace"'
    )
    assert (
        body["reason"] == "Forbidden"
        and body["details"] == {"name": "x", "kind": "pods"}
        and body["code"] == 403
    )
    body = _forbidden(lambda: apps.read_namespaced_deployment("other", NS))
    assert body["message"].startswith('deployments.apps "other" is forbidden: User "system:serviceaccount:streamspace:runner" cannot get resource "deployments" in API group "apps"')  # fmt: skip
    with pytest.raises(ApiException) as info:  # allowed by resourceNames: the 404 is the object's
        apps.read_namespaced_deployment("agent", NS)
    assert info.value.status == 404
    body = _forbidden(lambda: core.list_namespace())
    assert body["message"].endswith('cannot list resource "namespaces" in API group "" at the cluster scope')
    body = _forbidden(lambda: core.list_namespaced_config_map(NS))
    assert body["message"].startswith("configmaps is forbidden:")


def test_websocket_exec_needs_get_and_create_on_pods_exec(cluster):
    emu, _, sa, _ = cluster
    from kubernetes.stream import stream

    with pytest.raises(ApiException) as info:
        stream(client.CoreV1Api(sa).connect_get_namespaced_pod_exec, "x", NS, command=["true"], stdout=True, _preload_content=True)  # fmt: skip
    # the websocket client reports the refused handshake as status 0 with the HTTP status in its reason
    text = f"{info.value.status} {info.value.reason} {info.value.body}"
    assert "403" in text, text
    trace = emu.rbac.trace_json()["system:serviceaccount:streamspace:runner"]
    assert ["get", "pods", "exec", "x"] in trace and ["create", "pods", "exec", "x"] in trace


def test_self_subject_access_review_answers_for_the_caller(cluster):
    _, admin, sa, _ = cluster

    def review(api, verb, resource, sub=None, name=None):
        attrs = client.V1ResourceAttributes(
            verb=verb, resource=resource, subresource=sub, name=name, namespace=NS
        )
        spec = client.V1SelfSubjectAccessReviewSpec(resource_attributes=attrs)
        return client.AuthorizationV1Api(api).create_self_subject_access_review(client.V1SelfSubjectAccessReview(spec=spec)).status.allowed  # fmt: skip

    assert review(sa, "list", "pods") is True
    assert review(sa, "get", "pods", "exec") is True and review(sa, "create", "pods", "exec") is False
    assert review(sa, "delete", "pods") is False
    assert review(admin, "delete", "pods") is True


def test_unknown_tokens_are_401_and_the_trace_records_the_calls(cluster):
    emu, _, sa, kubeconfig = cluster
    with pytest.raises(ApiException) as info:
        client.CoreV1Api(_api(kubeconfig, "forged-token-123456")).list_namespaced_pod(NS)
    assert info.value.status == 401
    client.CoreV1Api(sa).list_namespaced_pod(NS)
    trace = emu.rbac.trace_json()["system:serviceaccount:streamspace:runner"]
    assert ["list", "pods", "", ""] in trace


def test_a_token_secret_is_filled_for_its_service_account(cluster):
    _, admin, _, kubeconfig = cluster
    core = client.CoreV1Api(admin)
    meta = client.V1ObjectMeta(
        name="runner-token", annotations={"kubernetes.io/service-account.name": "runner"}
    )
    core.create_namespaced_secret(
        NS, client.V1Secret(metadata=meta, type="kubernetes.io/service-account-token")
    )
    import base64

    token = base64.b64decode(core.read_namespaced_secret("runner-token", NS).data["token"]).decode()
    assert client.CoreV1Api(_api(kubeconfig, token)).list_namespaced_pod(NS).items == []
