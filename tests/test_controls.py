"""The safety and timeline controls, exercised through real `chaos run` subprocesses."""

import json
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
from helpers.kube import emulator
from helpers.net import free_port
from helpers.waits import wait_for_file
from journal_fixtures import act, experiment, finish_chaos, run_chaos, start_chaos
from journal_fixtures.fake_api import PASSWORD, USERNAME, FakeStreamSpace

from chaosstream.controls.lock import A_EXPERIMENT, LOCK_NAME
from chaosstream.journal.schema import SAFETY_EXTENSION, TIMELINE_EXTENSION
from chaosstream.journal.verdict import INTERRUPTED, PASSED, evaluate
from chaosstream.sandbox.kube import write_kubeconfig


def safety(**arguments: Any) -> Dict[str, Any]:
    return {
        "name": "safety",
        "provider": {"type": "python", "module": "chaosstream.controls.safety", "arguments": arguments},
    }


def timeline(interval: float = 0.1) -> Dict[str, Any]:
    provider = {
        "type": "python",
        "module": "chaosstream.controls.timeline",
        "arguments": {"interval": interval},
    }
    return {"name": "timeline", "provider": provider}


def ext(journal: Dict[str, Any], name: str) -> Dict[str, Any]:
    return next(e for e in journal.get("extensions", []) if e.get("name") == name)


def signal_experiment(
    tmp: Path, controls: Optional[List[Dict[str, Any]]], strategy: str = "default"
) -> Dict[str, Any]:
    method = [act("inject-fault", "slow", seconds=20, ready=str(tmp / "ready")), act("next-step", "value")]
    heal = act("heal-fault", "fix_it", path=str(tmp / "broken"), log=str(tmp / "rollback.log"))
    return experiment("signals", tmp, method, rollbacks=[heal], controls=controls, strategy=strategy)


# -- safety: signals -----------------------------------------------------------------------------------
def test_sigterm_without_control_is_swallowed(tmp_path: Path) -> None:
    rc, journal, _ = run_chaos(
        tmp_path, signal_experiment(tmp_path, None), send=signal.SIGTERM, ready=tmp_path / "ready"
    )
    assert (rc, journal["status"]) == (0, "completed")  # the gap this control closes
    assert evaluate(journal).code == INTERRUPTED


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("strategy", ["default", "deviated", "always"])
def test_signal_interrupts_and_plays_rollbacks(tmp_path: Path, sig: int, strategy: str) -> None:
    exp = signal_experiment(tmp_path, [safety(lock=False)], strategy)
    rc, journal, log = run_chaos(tmp_path, exp, send=sig, ready=tmp_path / "ready")
    assert rc == 1 and journal["status"] == "interrupted", log
    assert [r["activity"]["name"] for r in journal["run"]] == ["inject-fault"]  # stopped at the boundary
    assert [(r["activity"]["name"], r["status"]) for r in journal["rollbacks"]] == [
        ("heal-fault", "succeeded")
    ]
    assert (tmp_path / "rollback.log").read_text() == "fixed\n"
    report = ext(journal, SAFETY_EXTENSION)
    assert report["signals"][0]["signal"] == signal.Signals(sig).name
    assert report["rollbacks_replayed"] == (strategy != "always")  # chaoslib plays them itself under always
    assert evaluate(journal).code == INTERRUPTED


def test_strategy_never_is_respected(tmp_path: Path) -> None:
    exp = signal_experiment(tmp_path, [safety(lock=False)], "never")
    rc, journal, _ = run_chaos(tmp_path, exp, send=signal.SIGTERM, ready=tmp_path / "ready")
    assert journal["status"] == "interrupted" and journal["rollbacks"] == []
    assert not (tmp_path / "rollback.log").exists()


def test_signal_during_rollbacks_does_not_cut_them_short(tmp_path: Path) -> None:
    rollbacks = [
        act("slow-heal", "slow", seconds=0.8, ready=str(tmp_path / "ready")),
        act("heal-fault", "fix_it", path=str(tmp_path / "broken"), log=str(tmp_path / "rollback.log")),
    ]
    exp = experiment(
        "rb", tmp_path, [act("noop", "value")], rollbacks=rollbacks, controls=[safety(lock=False)]
    )
    rc, journal, _ = run_chaos(tmp_path, exp, send=signal.SIGTERM, ready=tmp_path / "ready")
    assert [r["status"] for r in journal["rollbacks"]] == ["succeeded", "succeeded"]
    assert (tmp_path / "rollback.log").exists()
    assert journal["status"] == "interrupted" and evaluate(journal).code == INTERRUPTED


# -- safety: run lock ----------------------------------------------------------------------------------
@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Dict[str, Any]]:
    """The sandbox's Kubernetes emulator (real, never a stand-in) with the namespace `streamspace`."""
    from kubernetes import client, config

    kubeconfig = tmp_path / "kubeconfig"
    with emulator(kubeconfig, "streamspace"):
        api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        coordination = client.CoordinationV1Api(api.api_client)
        yield {"core": api, "coordination": coordination, "env": {"KUBECONFIG": str(kubeconfig)}}


def _lock(kube: Dict[str, Any]) -> Any:
    from kubernetes.client.exceptions import ApiException

    try:
        return kube["coordination"].read_namespaced_lease(LOCK_NAME, "streamspace")
    except ApiException as exc:
        assert exc.status == 404
        return None


def test_second_run_is_refused_while_the_lock_is_held(tmp_path: Path, kube: Dict[str, Any]) -> None:
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    # long enough that the second run starts while the first still holds the lock, even on a loaded machine
    slow = act("inject-fault", "slow", seconds=8.0, ready=str(first_dir / "ready"))
    first = experiment("first", first_dir, [slow], controls=[safety(ttl=30)])
    proc, journal_path = start_chaos(first_dir, first, env=kube["env"])
    assert wait_for_file(first_dir / "ready", proc)
    held = _lock(kube)
    assert held.metadata.labels["app.kubernetes.io/managed-by"] == "chaosstream"
    assert held.metadata.annotations[A_EXPERIMENT] == "first"
    assert held.spec.holder_identity and held.spec.lease_duration_seconds == 30
    assert held.spec.renew_time.timestamp() > time.time() - 15

    heal = act("heal-fault", "fix_it", path=str(second_dir / "x"), log=str(second_dir / "rollback.log"))
    second = experiment(
        "second",
        second_dir,
        [act("noop", "value")],
        rollbacks=[heal],
        controls=[safety(ttl=30)],
        strategy="always",
    )
    rc, journal, log = run_chaos(second_dir, second, env=kube["env"])
    assert rc == 1 and journal["status"] == "interrupted", log
    assert (
        journal["run"] == [] and journal["rollbacks"] == []
    )  # the other run's faults are not ours to revert
    assert not (second_dir / "rollback.log").exists()
    refused = ext(journal, SAFETY_EXTENSION)["refused"]
    assert "Another chaosstream experiment already runs" in refused and "'first'" in refused
    assert "Lease streamspace/chaosstream-run-lock" in refused
    assert "kubectl delete lease -n streamspace chaosstream-run-lock" in refused
    assert evaluate(journal).code == INTERRUPTED

    rc, journal, log = finish_chaos(proc, journal_path)
    assert rc == 0 and evaluate(journal).code == PASSED, log
    assert ext(journal, SAFETY_EXTENSION)["lock"]["released"] is True
    assert _lock(kube) is None


def test_a_lease_nobody_renews_is_taken_over_after_its_duration(tmp_path: Path, kube: Dict[str, Any]) -> None:
    from kubernetes import client

    renewed = datetime.fromtimestamp(time.time() - 31, UTC)
    meta = client.V1ObjectMeta(
        name=LOCK_NAME,
        labels={"app.kubernetes.io/managed-by": "chaosstream"},
        annotations={A_EXPERIMENT: "crashed game day"},
    )
    spec = client.V1LeaseSpec(
        holder_identity="dead-runner/1/abc",
        lease_duration_seconds=30,
        renew_time=renewed,
        acquire_time=renewed,
    )
    kube["coordination"].create_namespaced_lease("streamspace", client.V1Lease(metadata=meta, spec=spec))
    exp = experiment("takeover", tmp_path, [act("noop", "value")], controls=[safety(ttl=30)])
    rc, journal, log = run_chaos(tmp_path, exp, env=kube["env"])
    assert rc == 0, log
    lock = ext(journal, SAFETY_EXTENSION)["lock"]
    assert "took over the expired lock of dead-runner/1/abc" in lock["acquired"]
    assert _lock(kube) is None


def test_a_lease_renewed_within_its_duration_is_not_taken_over(tmp_path: Path, kube: Dict[str, Any]) -> None:
    from kubernetes import client

    renewed = datetime.fromtimestamp(time.time() - 20, UTC)
    spec = client.V1LeaseSpec(
        holder_identity="live-runner/2/def", lease_duration_seconds=30, renew_time=renewed
    )
    meta = client.V1ObjectMeta(name=LOCK_NAME, annotations={A_EXPERIMENT: "nightly"})
    kube["coordination"].create_namespaced_lease("streamspace", client.V1Lease(metadata=meta, spec=spec))
    exp = experiment("blocked", tmp_path, [act("noop", "value")], controls=[safety(ttl=30)])
    rc, journal, log = run_chaos(tmp_path, exp, env=kube["env"])
    refused = ext(journal, SAFETY_EXTENSION)["refused"]
    assert journal["run"] == [] and "live-runner/2/def" in refused and "'nightly'" in refused, refused


def test_unreachable_kubernetes_refuses_or_uses_the_file_lock(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(str(kubeconfig), f"http://127.0.0.1:{free_port()}", "streamspace")
    env = {"KUBECONFIG": str(kubeconfig)}
    exp = experiment("nokube", tmp_path, [act("noop", "value")], controls=[safety(ttl=30)])
    rc, journal, _ = run_chaos(tmp_path, exp, env=env, name="refused")
    assert journal["status"] == "interrupted" and journal["run"] == []
    assert "Kubernetes is unreachable" in ext(journal, SAFETY_EXTENSION)["refused"]

    lock_dir = tmp_path / "locks"
    exp["configuration"] = {"streamspace_lock_dir": str(lock_dir)}
    rc, journal, log = run_chaos(tmp_path, exp, env=env, name="filelock")
    assert rc == 0, log
    lock = ext(journal, SAFETY_EXTENSION)["lock"]
    assert lock["where"].startswith("file ") and lock["released"] is True
    assert not (lock_dir / f"{LOCK_NAME}-streamspace.json").exists()


# -- timeline ------------------------------------------------------------------------------------------
@pytest.fixture
def fake_api(tmp_path: Path) -> Iterator[FakeStreamSpace]:
    fake = FakeStreamSpace(tmp_path / "state.json").start()
    yield fake
    fake.stop()


def _api_config(url: str) -> Dict[str, Any]:
    return {
        "configuration": {"streamspace_api_url": url, "streamspace_http_timeout": 2},
        "secrets": {"streamspace": {"username": USERNAME, "password": PASSWORD}},
    }


def test_timeline_records_samples_and_markers(tmp_path: Path, fake_api: FakeStreamSpace) -> None:
    state = str(tmp_path / "state.json")
    method = [
        act("partition-agent", "set_agent", state_file=state, agent_id="agent-b", status="offline", hold=0.6),
        act("wait-offline", "recovered", "probe", elapsed_s=0.6),
    ]
    heal = act("heal-partition", "set_agent", state_file=state, agent_id="agent-b", status="online", hold=0.3)
    extra = _api_config(fake_api.url)
    extra["configuration"].update(
        reconnect_objective={"type": "env", "key": "CHAOSSTREAM_TEST_OBJECTIVE", "default": "7"},
        extra_api_token="sekrit-value-123",
    )
    exp = experiment(
        "timeline",
        tmp_path,
        method,
        rollbacks=[heal],
        controls=[timeline(0.1)],
        extra=extra,
    )
    rc, journal, log = run_chaos(tmp_path, exp)
    assert rc == 0, log
    data = ext(journal, TIMELINE_EXTENSION)
    assert data["errors"]["count"] == 0, data["errors"]
    # what the run targets, and its configuration as chaoslib resolved it (for the report's objectives)
    target = data["target"]
    assert target["api_url"] == fake_api.url and target["namespace"] == "streamspace"
    assert target["chaosstream_version"] and "streamspace_version" in target and "kube_context" in target
    assert data["configuration"]["reconnect_objective"] == "7"
    assert data["configuration"]["streamspace_http_timeout"] == 2
    assert "extra_api_token" not in data["configuration"] and "sekrit-value-123" not in json.dumps(data)
    samples = data["samples"]
    assert len(samples) >= 5
    first = samples[0]
    assert {a["agentId"] for a in first["agents"]} == {"agent-a", "agent-b"}
    assert all(0 <= a["heartbeat_age_s"] < 5 for a in first["agents"])
    assert first["sessions"] == {"running": 2, "pending": 1}
    assert "commands" not in first  # no DSN configured: skipped silently
    statuses = [next(a["status"] for a in s["agents"] if a["agentId"] == "agent-b") for s in samples]
    assert "offline" in statuses and statuses[-1] == "online"
    markers = [(m["event"], m["name"], m["phase"]) for m in data["markers"]]
    assert ("start", "partition-agent", "method") in markers
    assert ("end", "heal-partition", "rollback") in markers
    assert ("start", "service-healthy", "hypothesis-before") in markers
    ends = [m for m in data["markers"] if m["event"] == "end"]
    assert all(m["status"] == "succeeded" for m in ends)


def test_timeline_with_api_down_never_breaks_the_run(tmp_path: Path) -> None:
    config = _api_config(f"http://127.0.0.1:{free_port()}")
    exp = experiment("down", tmp_path, [act("noop", "value")], controls=[timeline(0.1)], extra=config)
    rc, journal, log = run_chaos(tmp_path, exp)
    assert rc == 0 and journal["status"] == "completed", log
    data = ext(journal, TIMELINE_EXTENSION)
    assert data["samples"] == [] and data["errors"]["count"] >= 1
    assert "Cannot reach the StreamSpace API" in data["errors"]["last"]
    assert PASSWORD not in json.dumps(journal["extensions"])
    assert evaluate(journal).code == PASSED


def test_both_controls_together_on_sigterm(tmp_path: Path, fake_api: FakeStreamSpace) -> None:
    exp = signal_experiment(tmp_path, [safety(lock=False), timeline(0.1)])
    exp.update(_api_config(fake_api.url))
    rc, journal, _ = run_chaos(tmp_path, exp, send=signal.SIGTERM, ready=tmp_path / "ready")
    assert journal["status"] == "interrupted"
    markers = [(m["event"], m["name"], m["phase"]) for m in ext(journal, TIMELINE_EXTENSION)["markers"]]
    assert ("end", "heal-fault", "rollback") in markers  # the replayed rollback is on the timeline


def test_controls_work_from_a_control_file(tmp_path: Path, fake_api: FakeStreamSpace) -> None:
    """`chaos run --control-file controls.yaml` (global controls), as the CronJob and CI workflow use them."""
    control_file = tmp_path / "controls.yaml"
    control_file.write_text(
        "chaosstream-safety:\n  provider: {type: python, module: chaosstream.controls.safety, arguments: {lock: false}}\n"
        "chaosstream-timeline:\n  provider: {type: python, module: chaosstream.controls.timeline, arguments: {interval: 0.1}}\n"
    )
    exp = signal_experiment(tmp_path, None)
    exp.update(_api_config(fake_api.url))
    rc, journal, log = run_chaos(
        tmp_path,
        exp,
        send=signal.SIGTERM,
        ready=tmp_path / "ready",
        args=["--control-file", str(control_file)],
    )
    assert rc == 1 and journal["status"] == "interrupted", log
    assert [r["status"] for r in journal["rollbacks"]] == ["succeeded"]
    assert ext(journal, TIMELINE_EXTENSION)["samples"]
    assert evaluate(journal).code == INTERRUPTED
