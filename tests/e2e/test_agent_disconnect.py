"""Walking skeleton: `chaos run experiments/agent-disconnect.json` end to end against the sandbox."""

import json
import subprocess
import sys

import pytest
from helpers import ROOT
from helpers.procs import pid_alive
from kubernetes import client, config


def _agent_pods(env):
    api = client.CoreV1Api(config.new_client_from_config(config_file=env["KUBECONFIG"]))
    pods = api.list_namespaced_pod(
        "streamspace", label_selector="app.kubernetes.io/component=k8s-agent"
    ).items
    return {p.metadata.name: p.metadata.uid for p in pods if p.metadata.deletion_timestamp is None}


def _pid(sandbox, uid):
    return int((sandbox.state_dir / "pids" / f"{uid}.pid").read_text())


@pytest.mark.slow
def test_agent_disconnect_completes_and_really_restarts_the_agent(shared_sandbox, tmp_path):
    before = _agent_pods(shared_sandbox.env)
    assert len(before) == 1
    ((old_name, old_uid),) = before.items()
    old_pid = _pid(shared_sandbox, old_uid)

    journal_path = tmp_path / "journal.json"
    proc = shared_sandbox.chaos_run("agent-disconnect.json", journal_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    journal = json.loads(journal_path.read_text())
    assert journal["status"] == "completed"
    assert journal["deviated"] is False
    assert journal["steady_states"]["before"]["steady_state_met"] is True
    assert journal["steady_states"]["after"]["steady_state_met"] is True

    runs = {r["activity"]["name"]: r for r in journal["run"]}
    assert runs["rollout-restart-the-agent"]["status"] == "succeeded"
    assert runs["rollout-restart-the-agent"]["output"]["previous_pods"] == [old_name]
    reconnect = runs["agent-reconnect-time"]["output"]
    objective = float(shared_sandbox.env["STREAMSPACE_RECONNECT_OBJECTIVE"])
    assert reconnect["agentId"] == shared_sandbox.env["STREAMSPACE_AGENT_ID"]
    assert 0 < reconnect["elapsed_s"] <= objective

    after = _agent_pods(shared_sandbox.env)
    assert len(after) == 1 and old_name not in after, "the agent pod was not replaced"
    ((_, new_uid),) = after.items()
    new_pid = _pid(shared_sandbox, new_uid)
    assert new_pid != old_pid
    assert pid_alive(new_pid), "the new agent process does not run"
    assert not pid_alive(old_pid), "the old agent process still runs"


def test_committed_experiments_match_their_generator():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "build.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
