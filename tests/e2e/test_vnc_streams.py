"""What users feel, end to end against the sandbox (intended profile, fast timers, the chart's two API replicas):
the stream monitor's outage across an agent restart agrees with the sandbox's own record of when the stream's
bytes stopped and resumed (`GET /sandbox/v1/streams`) within one poll interval; `vnc-streaming.json` passes and
its journal carries the outage per session; under `--fault vnc-tunnel-rbac` it never passes, and names VNC."""

import json
import os

import httpx
import pytest
from helpers import EXPERIMENTS, ROOT
from helpers.chaos import chaos, run_args

from chaosstream.journal.verdict import judge_file
from chaosstream.timeutil import parse_timestamp

pytestmark = pytest.mark.slow
CONTROLS = EXPERIMENTS / "controls.yaml"


def _truth_gaps(env, session):
    """Ground truth: the stretches between one UI connection's last bytes and the next one's first bytes."""
    rows = httpx.get(
        f"{env['STREAMSPACE_API_URL']}/sandbox/v1/streams", params={"session_id": session}, timeout=10
    )
    streams = [s for s in rows.json()["streams"] if s["firstBytesAt"]]
    return [
        parse_timestamp(b["firstBytesAt"]) - parse_timestamp(a["lastBytesAt"])
        for a, b in zip(streams, streams[1:], strict=False)
    ]


def test_outage_across_an_agent_restart_agrees_with_the_sandbox_record(shared_sandbox):
    from chaosstream import actions, probes
    from chaosstream.selection import start_run

    env = shared_sandbox.env
    old = dict(os.environ)
    os.environ.update(env)
    start_run()
    try:
        created = actions.create_sessions(count=1, user="admin")["sessions"]
        probes.wait_for_sessions_state("running", timeout=30)
        ready = probes.wait_for_vnc(timeout=10)
        assert set(ready["sessions"]) == set(created) and ready["first_update_ms_max"] > 0
        hs = probes.vnc_handshake(session_id=created[0])
        assert hs["ok"] and 0 < hs["banner_ms_max"] <= hs["first_update_ms_max"]
        actions.monitor_streams()
        assert probes.stream_continuity(wait=10)["all_up"]
        actions.kill_agent_pod(grace_period=0)  # its socket closes: the proxy drops the UI's stream
        probes.wait_for_agent_status("online", timeout=30)
        report = probes.stream_continuity(max_reconnect_s=5)
        actions.stop_stream_monitor()
    finally:
        try:
            actions.stop_stream_monitor()
            actions.terminate_sessions()
        finally:
            os.environ.clear()
            os.environ.update(old)
    session = report["sessions"][created[0]]
    truth = _truth_gaps(env, created[0])
    interval = float(env["STREAMSPACE_POLL_INTERVAL"])
    print("monitor", json.dumps({k: session[k] for k in ("outage_s", "longest_gap_s", "reconnects", "gaps")}))
    print("truth", truth)
    assert report["all_up"] and session["reconnects"] >= 1 and truth, (report, truth)
    # the restart's gap, measured by the client, is the sandbox's within one poll interval
    assert abs(session["longest_gap_s"] - max(truth)) <= interval, (session, truth)
    assert report["fault_end"] == "agent online" and report["reconnect_after_fault_s_max"] is not None


def _run(sandbox, experiment, journal, **env):
    proc = chaos(
        *run_args(EXPERIMENTS / experiment, journal, control_file=CONTROLS),
        env=sandbox.environ(**env),
        cwd=ROOT,
        timeout=240,
    )
    assert journal.exists(), proc.stdout + proc.stderr
    return judge_file(str(journal))


def test_vnc_streaming_passes_and_its_journal_says_what_users_lost(shared_sandbox, tmp_path):
    journal_path = tmp_path / "vnc-streaming.json"
    journal, verdict = _run(shared_sandbox, "vnc-streaming.json", journal_path, STREAMSPACE_STREAM_SOAK="2")
    assert verdict.code == 0, verdict.lines()
    runs = {r["activity"]["name"]: r for r in journal["run"]}
    assert runs["restart-one-api-pod"]["output"]["killed"]
    back = runs["streams-back-after-the-api-restart"]["output"]
    assert back["streams"] == 2 and back["all_up"] and back["fault_end"] == "API pod replaced"
    (streams,) = [e for e in journal["extensions"] if e["name"] == "chaosstream-streams"]
    assert set(streams["events"]) == set(streams["report"]["sessions"]) and streams["stopped"]
    for summary in streams["report"]["sessions"].values():
        assert summary["ever_up"] and isinstance(summary["outage_s"], float)
    from chaosstream.journal.report.model import build

    data = build(journal)
    assert len(data.stream_sentences()) == 2 and all(
        "lost the desktop for" in s for s in data.stream_sentences()
    )


def test_vnc_tunnel_rbac_never_passes_and_names_vnc(sandbox_factory, tmp_path):
    """The documented defect: the agent's ServiceAccount lacks pods/portforward; sessions run, streams fail."""
    sandbox = sandbox_factory(faults=("vnc-tunnel-rbac",))
    journal, verdict = _run(
        sandbox, "vnc-streaming.json", tmp_path / "rbac.json", STREAMSPACE_STREAM_SOAK="2"
    )
    assert verdict.code in (1, 2), verdict.lines()
    deciding = " ".join(verdict.lines())
    assert "VNC" in deciding and "vnc-ready-time" in deciding, deciding
    runs = {r["activity"]["name"]: r for r in journal["run"]}
    assert runs["sessions-start-time"]["status"] == "succeeded"  # the sessions did reach running
