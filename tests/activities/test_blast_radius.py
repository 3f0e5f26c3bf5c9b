"""Blast radius: fault actions act only on StreamSpace agents. A user's session pod or Deployment, or a
selector that matches every pod, is refused with one sentence and nothing changes; `allow_non_agent`
is the explicit way out."""

import pytest
from chaoslib.exceptions import ActivityFailed
from helpers.sentences import assert_one_sentence

from chaosstream import actions

SESSION_LABELS = {"app": "streamspace-session", "session": "user-abc"}


@pytest.fixture(scope="module")
def session_deployment(harness):
    """A user's session Deployment (what the agent creates): not an agent."""
    name = "user-abc-session"
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "streamspace", "labels": dict(SESSION_LABELS)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"session": "user-abc"}},
            "template": {
                "metadata": {"labels": dict(SESSION_LABELS)},
                "spec": {"containers": [{"name": "session", "image": "lscr.io/linuxserver/firefox:latest"}]},
            },
        },
    }
    harness.apps.create_namespaced_deployment("streamspace", body)
    from helpers.waits import wait_for

    wait_for(lambda: harness.pods("session=user-abc"), 20, "the session pod")
    yield name
    harness.apps.delete_namespaced_deployment(name, "streamspace")


def _state(harness, name):
    dep = harness.apps.read_namespaced_deployment(name, "streamspace")
    pods = sorted(harness.pods("session=user-abc"))
    policies = [p.metadata.name for p in harness.net.list_namespaced_network_policy("streamspace").items]
    annotations = {
        k: v
        for p in harness.pods("session=user-abc").values()
        for k, v in (p.metadata.annotations or {}).items()
        if k.startswith("chaosstream")
    }
    return dep.spec.replicas, dep.spec.template.metadata.annotations, pods, policies, annotations


@pytest.mark.parametrize(
    "func, kwargs, needle",
    [
        (
            actions.kill_agent_pod,
            {"label_selector": "app=streamspace-session"},
            "not a StreamSpace agent pod",
        ),
        (
            actions.partition_agent,
            {"label_selector": "app=streamspace-session", "method": "network-policy"},
            "not a StreamSpace agent pod",
        ),
        (
            actions.scale_agents,
            {"deployment": "user-abc-session", "replicas": 0},
            "is not the StreamSpace agent",
        ),
        (actions.restart_agent, {"deployment": "user-abc-session"}, "is not the StreamSpace agent"),
        (actions.kill_agent_pod, {"label_selector": "!no-such-label"}, "absence only"),
        (actions.partition_agent, {"label_selector": "!no-such-label"}, "absence only"),
        (actions.kill_agent_pod, {"label_selector": "app!=nothing,tier notin (x)"}, "absence only"),
    ],
    ids=[
        "kill-session-pod",
        "partition-session-pod",
        "scale-session",
        "restart-session",
        "kill-all-pods",
        "partition-all-pods",
        "kill-by-negations",
    ],
)
def test_non_agents_are_refused_and_nothing_changes(harness, session_deployment, func, kwargs, needle):
    before = _state(harness, session_deployment)
    agents_before = sorted(harness.agent_pods())
    with pytest.raises(ActivityFailed) as info:
        harness.call(func, **kwargs)
    assert_one_sentence(str(info.value), needle)
    assert "allow_non_agent" in str(info.value) or "absence only" in needle
    assert _state(harness, session_deployment) == before
    assert sorted(harness.agent_pods()) == agents_before


def test_allow_non_agent_is_the_explicit_way_out(harness, session_deployment):
    out = harness.call(
        actions.scale_agents, deployment=session_deployment, replicas=0, allow_non_agent=True, duration=60
    )
    try:
        assert out["replicas"] == 0
        assert harness.apps.read_namespaced_deployment(session_deployment, "streamspace").spec.replicas == 0
    finally:
        harness.call(actions.scale_agents, deployment=session_deployment, replicas=-1)
    assert harness.apps.read_namespaced_deployment(session_deployment, "streamspace").spec.replicas == 1


def test_the_agent_itself_is_still_accepted(harness):
    out = harness.call(actions.restart_agent, wait=True, timeout=60)
    assert out["deployment"] == "streamspace-k8s-agent"
