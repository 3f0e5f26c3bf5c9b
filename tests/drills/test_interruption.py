"""Interruption drills: SIGINT, SIGTERM and SIGKILL reach `chaos run` in the middle of the method, right
after the fault is in place. Afterwards nothing of ours may remain — at once when the runner could play
its rollbacks, within the fault's own duration (+5 s) when it was SIGKILLed — and `chaosstream heal`
finds nothing to heal."""

import json
import signal
import time
from pathlib import Path

import pytest
from helpers import EXPERIMENTS
from helpers.waits import wait_for

from drills._drill import (
    PREVIOUS_REPLICAS,
    agent_online,
    clean,
    finish,
    heal_output,
    kill_when,
    kube,
    leftovers,
    partition_ids,
    scaled_down_expiry,
    send,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        __import__("os").geteuid() != 0, reason="network partitions need root (pod network namespaces)"
    ),
]

DURATION = 9  # STREAMSPACE_PARTITION_DURATION: outlasts the network-policy verification window (7.5 s fast)
METHODS = ("ephemeral", "exec", "network-policy")
CONTROL_FILE = EXPERIMENTS / "controls.yaml"
LOCK = "chaosstream-run-lock"


def _rollback_statuses(journal: Path) -> dict:
    data = json.loads(journal.read_text())
    return {r["activity"]["name"]: r["status"] for r in data.get("rollbacks", [])}


def _lock_present(sandbox) -> bool:
    from kubernetes import client, config

    api = client.CoordinationV1Api(config.new_client_from_config(config_file=sandbox.env["KUBECONFIG"]))
    names = [lease.metadata.name for lease in api.list_namespaced_lease("streamspace").items]
    return LOCK in names


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "signame,safety",
    [("SIGINT", False), ("SIGTERM", False), ("SIGKILL", False)],
)
def test_signal_during_partition(
    sandbox_factory, tmp_path: Path, method: str, signame: str, safety: bool
) -> None:
    _drill(sandbox_factory, tmp_path, method, signame, safety)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_signal_with_safety_control(sandbox_factory, tmp_path: Path, signame: str) -> None:
    """The same with the safety control (`--control-file experiments/controls.yaml`): rollbacks played,
    the run ends `interrupted`, and the run lock is released."""
    _drill(sandbox_factory, tmp_path, "ephemeral", signame, True)


def _drill(sandbox_factory, tmp_path: Path, method: str, signame: str, safety: bool) -> None:
    sandbox = sandbox_factory()
    journal = tmp_path / "journal.json"
    env = {"STREAMSPACE_PARTITION_METHOD": method, "STREAMSPACE_PARTITION_DURATION": str(DURATION)}
    proc = sandbox.start_chaos_run(
        "agent-heartbeat.json", journal, env, control_file=CONTROL_FILE if safety else None
    )
    try:
        records = wait_for(lambda: partition_ids(sandbox), 30, "the partition annotation")
        ((pid, record),) = records.items()
        # the annotation is written before injecting: wait until the fault itself is there
        if method == "network-policy":
            wait_for(lambda: leftovers(sandbox)["policies"], 30, "the NetworkPolicy")
        else:
            wait_for(lambda: leftovers(sandbox)["iptables"], 30, "the iptables rule")
        sig = getattr(signal, signame)
        signalled = time.monotonic()
        send(proc, sig, group=(signame == "SIGINT"))
        output = finish(proc, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    ended = time.monotonic() - signalled
    if signame == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
        assert not journal.exists()  # nobody could play a rollback: only self-expiry helps
        expires = time.time() + 0  # wait relative to the record's expiry
        from chaosstream.timeutil import parse_time

        deadline_s = parse_time(record["expires_at"]).timestamp() + 5 - expires
        t0 = time.monotonic()
        wait_for(
            lambda: clean(leftovers(sandbox, pid)), max(deadline_s, 0.5), f"self-expiry of {method}", 0.2
        )
        healed_after = time.monotonic() - signalled
        print(
            f"\n{method} SIGKILL: clean {healed_after:.1f}s after the kill (duration {DURATION}s, "
            f"waited {time.monotonic() - t0:.1f}s)"
        )
    else:
        # Our policy is gone when the run ends; the sandbox's enforcer (standing in for the CNI) drops its
        # DROP rule on its next pass (every 0.2 s), so allow it one second, as a real CNI also lags.
        found = leftovers(sandbox, pid)
        deadline = time.monotonic() + 1.0
        while not clean(found) and time.monotonic() < deadline and not found["policies"]:
            time.sleep(0.1)
            found = leftovers(sandbox, pid)
        assert clean(found), f"{signame} left {found}\n{output[-2000:]}"
        data = json.loads(journal.read_text())
        rollbacks = _rollback_statuses(journal)
        assert rollbacks.get("heal-any-partition") == "succeeded", (rollbacks, output[-2000:])
        if safety:
            assert data["status"] == "interrupted", data["status"]
            assert not _lock_present(sandbox), "the run lock was not released"
        print(
            f"\n{method} {signame} safety={safety}: rc={proc.returncode} status={data['status']} "
            f"rollbacks={rollbacks} exit {ended:.1f}s after the signal"
        )
    healed = heal_output(sandbox)
    if signame == "SIGKILL":
        # no rollback ran: the sessions the run created (for the VNC monitor) are still recorded, and heal
        # terminates them; every Kubernetes fault had already expired by itself
        lines = [line for line in healed.splitlines() if line.strip()]
        assert all(line.startswith("healed: sessions ") for line in lines), healed
        healed = heal_output(sandbox)
    assert healed.startswith("Nothing to heal"), healed
    wait_for(lambda: agent_online(sandbox), 15, "the agent back online")


def test_sigkill_during_total_outage(sandbox_factory, tmp_path: Path) -> None:
    """SIGKILL while every agent is scaled away: the detached reaper restores the replicas."""
    sandbox = sandbox_factory()
    _, apps, _ = kube(sandbox)
    ns = sandbox.env["STREAMSPACE_NAMESPACE"]
    journal = tmp_path / "journal.json"
    # The outage lasts ~0.1 s in the baseline (the agent exits at once); hold it open with a pause so the
    # SIGKILL lands inside it whatever the machine's load.
    experiment = json.loads((EXPERIMENTS / "total-agent-outage.json").read_text())
    for activity in experiment["method"]:
        if activity["name"] == "scale-the-agents-to-zero":
            activity["pauses"] = {"after": 30}
    held = tmp_path / "total-agent-outage-held.json"
    held.write_text(json.dumps(experiment))
    proc = sandbox.start_chaos_run(str(held), journal, {"STREAMSPACE_PARTITION_DURATION": str(DURATION)})

    expires_at = kill_when(proc, lambda: scaled_down_expiry(sandbox), 30, "the agents scaled to zero")
    killed = time.monotonic()
    from chaosstream.timeutil import parse_time

    budget = parse_time(expires_at).timestamp() + 5 - time.time()

    def restored() -> bool:
        dep = apps.read_namespaced_deployment("streamspace-k8s-agent", ns)
        return (
            dep.spec.replicas == 1
            and (dep.status.ready_replicas or 0) == 1
            and PREVIOUS_REPLICAS not in (dep.metadata.annotations or {})
        )

    wait_for(restored, max(budget, 0.5), "replicas restored by the reaper", 0.2)
    print(f"\ntotal outage SIGKILL: replicas back {time.monotonic() - killed:.1f}s after the kill")
    assert heal_output(sandbox).startswith("Nothing to heal")
    wait_for(lambda: agent_online(sandbox), 15, "the agent back online")
