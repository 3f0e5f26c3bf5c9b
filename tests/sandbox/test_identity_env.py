"""Agent identity from the Deployment's env, as the kubelet expands it (chart and static-manifest shapes)."""

from kubernetes import client

from chaosstream.faults.targets import agent_env_id, id_is_per_pod
from chaosstream.sandbox.processruntime import _env_of, expand_refs

CHART_ENV = [
    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    {"name": "AGENT_ID_PREFIX", "value": "k8s-prod-cluster"},
    {"name": "AGENT_ID", "value": "$(AGENT_ID_PREFIX)-$(POD_NAME)"},
]


def _pod(env):
    return {"metadata": {"name": "streamspace-k8s-agent-7f9c-x2x9q", "namespace": "streamspace", "uid": "u"},
            "spec": {"containers": [{"name": "k8s-agent", "env": env}]}}  # fmt: skip


def test_kubelet_expands_dependent_env_vars_like_kubernetes():
    env = _env_of(_pod(CHART_ENV), _pod(CHART_ENV)["spec"]["containers"][0], "10.0.0.2")
    assert env["AGENT_ID"] == "k8s-prod-cluster-streamspace-k8s-agent-7f9c-x2x9q"
    # Only variables defined *earlier* expand; unknown references stay; $$ escapes.
    assert expand_refs("$(LATER)-$(A)", {"A": "a"}) == "$(LATER)-a"
    assert expand_refs("$$(A) costs $$5", {"A": "a"}) == "$(A) costs $5"
    late = [{"name": "AGENT_ID", "value": "$(AGENT_ID_PREFIX)-x"}, {"name": "AGENT_ID_PREFIX", "value": "p"}]
    assert _env_of(_pod(late), _pod(late)["spec"]["containers"][0], "")["AGENT_ID"] == "$(AGENT_ID_PREFIX)-x"


def _v1pod(env):
    items = []
    for e in env:
        if "value" in e:
            items.append(client.V1EnvVar(name=e["name"], value=e["value"]))
        else:
            ref = client.V1ObjectFieldSelector(field_path=e["valueFrom"]["fieldRef"]["fieldPath"])
            items.append(client.V1EnvVar(name=e["name"], value_from=client.V1EnvVarSource(field_ref=ref)))
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name="streamspace-k8s-agent-7f9c-x2x9q", namespace="streamspace"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="k8s-agent", env=items)]),
    )


def test_the_product_reads_a_pods_agent_id_as_the_kubelet_would():
    pod = _v1pod(CHART_ENV)
    agent_id = agent_env_id(pod)
    assert agent_id == "k8s-prod-cluster-streamspace-k8s-agent-7f9c-x2x9q"
    assert id_is_per_pod(agent_id, pod.metadata.name)
    fixed = _v1pod([{"name": "AGENT_ID", "value": "k8s-agent-1"}])
    assert agent_env_id(fixed) == "k8s-agent-1" and not id_is_per_pod("k8s-agent-1", fixed.metadata.name)
    # An id the env cannot resolve (e.g. from a ConfigMap) is unknown, not a literal "$(...)".
    assert agent_env_id(_v1pod([{"name": "AGENT_ID", "value": "$(FROM_CONFIGMAP)"}])) == ""
