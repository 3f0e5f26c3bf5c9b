"""Deletion as a kubelet does it: `kill_agent_pod(grace_period=0)` still sends SIGTERM first (grace floored
at 2 s), so the agent says goodbye (closes its WebSocket) before it goes: this is not a crash."""

import os
import shutil

import pytest
from helpers.harness import Harness
from helpers.waits import wait_for

from chaosstream import actions
from chaosstream.faults.records import RUN_ID

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip"), reason="agent pods run as processes with root"
)


def test_delete_with_grace_zero_is_sigterm_first_and_the_agent_says_goodbye(sandbox_factory):
    sandbox = sandbox_factory()
    h = Harness(sandbox)
    (old,) = h.agent_pods()
    out = h.call(actions.kill_agent_pod, grace_period=0)
    assert out["killed"] == [old]
    log = sandbox.state_dir / "logs" / f"{old}.log"
    wait_for(lambda: old not in h.agent_pods(), 15, "the old pod gone")
    # The API object may go before the process has finished its goodbye (grace 0 removes it at once; the
    # kubelet still gives the process its 2 s): read the log once the process had that time.
    # Order matters, not speed: a loaded machine may take seconds to schedule the process.
    wait_for(lambda: "Received signal: SIGTERM" in log.read_text(), 20, "SIGTERM in the agent's log")
    wait_for(lambda: "WebSocket closed" in log.read_text(), 20, "the agent's goodbye in its log")


def test_the_runtime_floors_the_grace_period_at_two_seconds(tmp_path):
    """A container that needs 1 s to shut down after SIGTERM gets it even with grace 0 (then SIGKILL at 2 s)."""
    import asyncio
    import time

    from chaosstream.sandbox.processruntime import ProcessRuntime

    async def scenario():
        runtime = ProcessRuntime(tmp_path, None)
        slow = await asyncio.create_subprocess_exec(
            "sh", "-c", "trap 'sleep 1; exit 0' TERM; while :; do sleep 0.05; done"
        )
        stuck = await asyncio.create_subprocess_exec("sh", "-c", "trap '' TERM; while :; do sleep 0.05; done")
        await asyncio.sleep(0.3)
        results = []
        for proc in (slow, stuck):
            runtime._procs["uid"] = proc
            started = time.monotonic()
            await runtime.stop_pod({"metadata": {"uid": "uid", "name": "p"}}, 0)
            results.append((proc.returncode, time.monotonic() - started))
        return results

    (slow_rc, slow_s), (stuck_rc, stuck_s) = asyncio.run(scenario())
    assert slow_rc == 0 and 0.9 <= slow_s < 2.0, (slow_rc, slow_s)  # SIGTERM honoured, no SIGKILL
    assert stuck_rc == -9 and 1.9 <= stuck_s < 3.5, (stuck_rc, stuck_s)  # SIGKILL after the 2 s floor


def _agent_status(h: Harness) -> str:
    return h.sql("SELECT status FROM agents WHERE agent_id = %s", (h.agent_id,))[0][0]


def test_crash_kills_the_process_with_no_goodbye_and_the_stale_sweep_notices(sandbox_factory):
    sandbox = sandbox_factory()
    h = Harness(sandbox)
    (pod,) = h.agent_pods()
    log = sandbox.state_dir / "logs" / f"{pod}.log"
    before = log.read_text()
    out = h.call(actions.kill_agent_pod, mode="crash")
    assert out["killed"] == [pod] and out["details"][0]["verified"] is True
    assert list(h.agent_pods()) == [pod], "a crash keeps the pod (the kubelet restarts the container)"
    wait_for(lambda: _agent_status(h) == "online", 20, "the agent back after its restart")
    after = log.read_text()[len(before) :]
    assert "Received signal" not in after and "WebSocket closed" not in after, (
        "the crashed agent said goodbye"
    )
    restarts = h.core.read_namespaced_pod(pod, "streamspace").status.container_statuses[0].restart_count
    assert restarts >= 1


def test_hang_freezes_the_agent_until_healed_and_is_recorded(sandbox_factory):
    sandbox = sandbox_factory()
    h = Harness(sandbox)
    (pod,) = h.agent_pods()
    out = h.call(actions.kill_agent_pod, mode="hang", duration=60)
    detail = out["details"][0]
    assert detail["verified"] is True and "state T" in detail["how"]
    annotations = h.core.read_namespaced_pod(pod, "streamspace").metadata.annotations
    assert any(k == f"chaosstream.io/partition-{detail['hang_id']}" for k in annotations)
    wait_for(lambda: _agent_status(h) == "offline", 15, "the frozen agent marked offline by the stale sweep")
    healed = h.call(actions.heal_all)["healed"]
    # each healed fault names the run that made it (here this test process)
    assert healed == [f"hang {detail['hang_id']} on pod streamspace/{pod} (run {RUN_ID})"], healed
    wait_for(lambda: _agent_status(h) == "online", 15, "the thawed agent online again")
    annotations = h.core.read_namespaced_pod(pod, "streamspace").metadata.annotations or {}
    assert not [k for k in annotations if k.startswith("chaosstream.io/partition-")]
    assert h.call(actions.heal_all)["healed"] == []


def test_hang_thaws_by_itself(sandbox_factory):
    sandbox = sandbox_factory()
    h = Harness(sandbox)
    # longer than the stale threshold plus one sweep (4.5 s + 1 s with fast timers), so the freeze is seen
    h.call(actions.kill_agent_pod, mode="hang", duration=8)
    wait_for(lambda: _agent_status(h) == "offline", 10, "the frozen agent marked offline")
    wait_for(lambda: _agent_status(h) == "online", 15, "the agent thawed after its duration, with no heal")
