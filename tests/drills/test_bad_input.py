"""Bad input to the fault actions (partitions, heal, scaling, restarts): each case is refused with ONE
readable sentence as `ActivityFailed` before anything is touched, so the sandbox is left exactly as it was.

tests/activities/test_bad_inputs.py covers the probes, the session actions, API/DB failures and the
common blast-radius checks; this table covers what it does not: `partition_agent` (methods, durations,
ports, targets), `heal_agent_partition`/`heal_all` scope, `scale_agents` durations and missing objects,
a missing kubeconfig, and an experiment-level mistake (`chaos run` with a bad partition method).
"""

import time
from typing import Any, Dict

import pytest
from _sentences import assert_one_sentence
from chaoslib.exceptions import ActivityFailed

from chaosstream import actions
from tests.drills._drill import snapshot

P, H, HA, S, R, K = (
    actions.partition_agent,
    actions.heal_agent_partition,
    actions.heal_all,
    actions.scale_agents,
    actions.restart_agent,
    actions.kill_agent_pod,
)

# (id, activity, kwargs, configuration overrides, secrets overrides, word the sentence must contain)
CASES = [
    ("partition-unknown-method", P, {"method": "iptables"}, {}, {}, "method"),
    ("partition-method-none", P, {"method": None}, {}, {}, "method"),
    ("partition-negative-duration", P, {"duration": -1}, {}, {}, "duration"),
    ("partition-zero-duration", P, {"duration": 0}, {}, {}, "duration"),
    ("partition-string-duration", P, {"duration": "60"}, {}, {}, "duration"),
    ("partition-bool-duration", P, {"duration": True}, {}, {}, "duration"),
    ("partition-duration-over-max", P, {"duration": 7200}, {}, {}, "max_duration"),
    ("partition-nan-duration", P, {"duration": float("nan")}, {}, {}, "duration"),
    ("partition-empty-ports", P, {"ports": []}, {}, {}, "ports"),
    ("partition-port-zero", P, {"ports": [0]}, {}, {}, "ports"),
    ("partition-port-too-big", P, {"ports": [70000]}, {}, {}, "ports"),
    ("partition-ports-string", P, {"ports": "8000"}, {}, {}, "ports"),
    ("partition-port-bool", P, {"ports": [True]}, {}, {}, "ports"),
    ("partition-port-as-string", P, {"ports": ["8000"]}, {}, {}, "ports"),
    ("partition-zero-pods", P, {"max_pods": 0}, {}, {}, "max_pods"),
    ("partition-string-pods", P, {"max_pods": "1"}, {}, {}, "max_pods"),
    ("partition-empty-selector", P, {"label_selector": ""}, {}, {}, "label_selector"),
    ("partition-blank-selector", P, {"label_selector": "   "}, {}, {}, "label_selector"),
    ("partition-selector-not-string", P, {"label_selector": 5}, {}, {}, "label_selector"),
    ("partition-selector-matches-nothing", P, {"label_selector": "app=nothing-here"}, {}, {}, "app=nothing-here"),
    ("partition-other-namespace", P, {"namespace": "kube-system"}, {}, {}, "kube-system"),
    ("partition-unknown-agent", P, {"agent_id": "k8s-nope"}, {}, {}, "k8s-nope"),
    ("partition-bad-start-timeout", P, {"start_timeout": -1}, {}, {}, "start_timeout"),
    ("partition-empty-image", P, {"image": ""}, {}, {}, "image"),
    ("partition-missing-kubeconfig", P, {}, {}, {"KUBECONFIG": "/nonexistent/kubeconfig"}, "kubeconfig"),
    ("partition-bad-api-url", P, {}, {"streamspace_api_url": "not a url"}, {}, "streamspace_api_url"),
    ("heal-other-namespace", H, {"namespace": "default"}, {}, {}, "default"),
    ("heal-all-other-namespace", HA, {"namespace": "kube-system"}, {}, {}, "kube-system"),
    ("heal-all-missing-kubeconfig", HA, {}, {}, {"KUBECONFIG": "/nonexistent/kubeconfig"}, "kubeconfig"),
    ("scale-negative-duration", S, {"replicas": 0, "duration": -5}, {}, {}, "duration"),
    ("scale-zero-duration", S, {"replicas": 0, "duration": 0}, {}, {}, "duration"),
    ("scale-string-duration", S, {"replicas": 0, "duration": "600"}, {}, {}, "duration"),
    ("scale-negative-max", S, {"replicas": 0, "max_replicas": -1}, {}, {}, "max_replicas"),
    ("scale-unknown-deployment", S, {"replicas": 0, "deployment": "no-such-agent"}, {}, {}, "no-such-agent"),
    ("restart-unknown-deployment", R, {"deployment": "no-such-agent"}, {}, {}, "no-such-agent"),
    ("kill-float-grace", K, {"grace_period": 1.5}, {}, {}, "grace_period"),
    ("kill-selector-matches-nothing", K, {"label_selector": "app=nothing-here"}, {}, {}, "app=nothing-here"),
]  # fmt: skip


def _case_id(case: Any) -> str:
    values = getattr(case, "values", case)  # pytest.param(...) or a plain tuple
    return values[0]


@pytest.mark.parametrize(
    "case_id, func, kwargs, cfg, sec, needle",
    CASES,
    ids=[_case_id(c) for c in CASES],
)
def test_bad_input_is_refused_cleanly(
    shared_sandbox, case_id: str, func: Any, kwargs: Dict[str, Any], cfg: Dict, sec: Dict, needle: str
) -> None:
    configuration = shared_sandbox.configuration(**cfg)
    secrets = shared_sandbox.secrets(**sec)
    before = snapshot(shared_sandbox)
    started = time.monotonic()
    with pytest.raises(ActivityFailed) as info:
        func(**kwargs, configuration=configuration, secrets=secrets)
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert_one_sentence(message, needle, [shared_sandbox.env["STREAMSPACE_PASSWORD"]])
    assert elapsed < 10, f"{case_id} took {elapsed:.1f}s"
    time.sleep(0.1)  # anything started in the background (a reaper, a container) would show by now
    assert snapshot(shared_sandbox) == before, f"{case_id} changed the sandbox"
