"""Issue 14 end to end: the flagship experiments with StreamSpace's real timers (slow lane), the reconnect
time against the control plane's own record, and what agent-disconnect finds on the as-built profile."""

import json
import subprocess

import httpx
import pytest
from helpers.chaos import CHAOSSTREAM

from chaosstream.timeutil import parse_time


def _verdict(journal_path):
    proc = subprocess.run(
        [CHAOSSTREAM, "verdict", str(journal_path)], capture_output=True, text=True, timeout=60
    )
    return proc.returncode, proc.stdout + proc.stderr


def _events(sandbox, agent_id):
    env = sandbox.env
    base = env["STREAMSPACE_API_URL"]
    token = httpx.post(
        f"{base}/api/v1/auth/login",
        json={"username": env["STREAMSPACE_USERNAME"], "password": env["STREAMSPACE_PASSWORD"]},
        timeout=10,
    ).json()["token"]
    body = httpx.get(
        f"{base}/sandbox/v1/events",
        params={"agent_id": agent_id},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    return body["events"]


def check_reconnect_against_ground_truth(sandbox, journal):
    """The reported reconnection is the control plane's own `connected` event, within one poll interval."""
    runs = {r["activity"]["name"]: r for r in journal["run"]}
    reconnect = runs["agent-reconnect-time"]["output"]
    action_at = parse_time(reconnect["action_at"])
    connected = [
        e
        for e in _events(sandbox, reconnect["agentId"])
        if e["status"] == "online" and e["reason"] == "connected" and parse_time(e["at"]) > action_at
    ]
    assert connected, "the control plane recorded no connection after the restart"
    truth = (parse_time(connected[0]["at"]) - action_at).total_seconds()
    poll = float(sandbox.env["STREAMSPACE_POLL_INTERVAL"])
    assert abs(reconnect["elapsed_s"] - truth) <= poll, (reconnect, connected[0])
    return reconnect["elapsed_s"], truth


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["agent-disconnect.json", "agent-heartbeat.json"])
def test_flagship_experiments_pass_with_streamspaces_real_timers(sandbox_factory, tmp_path, experiment):
    sandbox = sandbox_factory(timers="real")
    assert sandbox.env["STREAMSPACE_HEARTBEAT_INTERVAL"] == "30"
    assert sandbox.env["STREAMSPACE_RECONNECT_OBJECTIVE"] == "30"
    journal_path = tmp_path / "journal.json"
    sandbox.chaos_run(experiment, journal_path, timeout=600)
    code, text = _verdict(journal_path)
    assert code == 0, text
    journal = json.loads(journal_path.read_text())
    if experiment == "agent-disconnect.json":
        reported, truth = check_reconnect_against_ground_truth(sandbox, journal)
        print(f"real timers: reconnect reported {reported:.3f}s, control plane {truth:.3f}s")
    else:
        runs = {r["activity"]["name"]: r for r in journal["run"]}
        detected = runs["offline-detection-time"]["output"]["elapsed_s"]
        assert detected <= float(sandbox.env["STREAMSPACE_OFFLINE_THRESHOLD"])
        print(f"real timers: offline detection {detected:.3f}s")


def test_agent_disconnect_fast_reports_the_control_planes_reconnection(sandbox_factory, tmp_path):
    sandbox = sandbox_factory()
    journal_path = tmp_path / "journal.json"
    sandbox.chaos_run("agent-disconnect.json", journal_path)
    code, text = _verdict(journal_path)
    assert code == 0, text
    check_reconnect_against_ground_truth(sandbox, json.loads(journal_path.read_text()))


def test_agent_disconnect_on_as_built_is_a_finding_about_approval(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(profile="as-built")
    journal_path = tmp_path / "journal.json"
    sandbox.chaos_run("agent-disconnect.json", journal_path)
    code, text = _verdict(journal_path)
    assert code == 1, text
    assert "awaits approval since" in text and "agent-reconnect-time" in text
    assert "Sessions no longer served by an online agent" in text  # the sessions are orphaned
