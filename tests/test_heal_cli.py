"""`chaosstream heal` against the real Kubernetes emulator: the run lock, --expired-only, --force, retries."""

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import ROOT
from helpers.kube import emulator
from helpers.net import free_port

from chaosstream.controls.lock import A_EXPERIMENT, LOCK_NAME

NS = "streamspace"


def heal(kubeconfig: Path, *args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ, KUBECONFIG=str(kubeconfig), STREAMSPACE_NAMESPACE=NS, PYTHONPATH=str(ROOT), **extra
    )
    code = "from chaosstream.cli import run; run()"
    return subprocess.run(
        [sys.executable, "-c", code, "heal", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _iso(offset: float) -> str:
    return datetime.fromtimestamp(time.time() + offset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scaled_down(emu, name: str, expires_in: float) -> None:
    emu.create_object(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": NS,
                "annotations": {
                    "chaosstream.io/previous-replicas": "2",
                    "chaosstream.io/expires-at": _iso(expires_in),
                },
            },
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]},
                },
            },
        }
    )


def replicas(kubeconfig: Path, name: str) -> int:
    from kubernetes import client, config

    apps = client.AppsV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    return apps.read_namespaced_deployment(name, NS).spec.replicas


@pytest.fixture
def kube(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    with emulator(kubeconfig, NS) as emu:
        yield emu, kubeconfig


def live_lease(kubeconfig: Path, renewed_ago: float) -> None:
    from kubernetes import client, config

    api = client.CoordinationV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    renewed = datetime.fromtimestamp(time.time() - renewed_ago, UTC)
    meta = client.V1ObjectMeta(name=LOCK_NAME, annotations={A_EXPERIMENT: "nightly heartbeat"})
    spec = client.V1LeaseSpec(
        holder_identity="runner-pod/7/abc", lease_duration_seconds=30, renew_time=renewed
    )
    api.create_namespaced_lease(NS, client.V1Lease(metadata=meta, spec=spec))


def test_heal_refuses_while_a_live_run_holds_the_lock_and_force_overrides(kube):
    emu, kubeconfig = kube
    scaled_down(emu, "agent", expires_in=300)
    live_lease(kubeconfig, renewed_ago=2)
    refused = heal(kubeconfig)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "runner-pod/7/abc" in refused.stderr and "'nightly heartbeat'" in refused.stderr
    assert f"Lease {NS}/{LOCK_NAME}" in refused.stderr and "--force" in refused.stderr
    assert replicas(kubeconfig, "agent") == 0
    # the reaper's mode is safe while the run lives: it leaves the live fault (not expired) alone
    reaper = heal(kubeconfig, "--expired-only")
    assert reaper.returncode == 0 and "Nothing to heal: no expired" in reaper.stdout, reaper.stderr
    assert replicas(kubeconfig, "agent") == 0
    forced = heal(kubeconfig, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "--force: removing the faults of the live run" in forced.stdout
    assert "healed: Deployment streamspace/agent scaled back to 2" in forced.stdout
    assert replicas(kubeconfig, "agent") == 2


def test_heal_names_the_dead_holder_whose_faults_it_removes(kube):
    emu, kubeconfig = kube
    scaled_down(emu, "agent", expires_in=300)
    live_lease(kubeconfig, renewed_ago=45)  # stopped renewing 15 s ago
    done = heal(kubeconfig)
    assert done.returncode == 0, done.stderr
    assert "Removing the faults left by runner-pod/7/abc (experiment 'nightly heartbeat')" in done.stdout
    assert replicas(kubeconfig, "agent") == 2


def test_expired_only_heals_only_what_expired(kube):
    emu, kubeconfig = kube
    scaled_down(emu, "old", expires_in=-5)
    scaled_down(emu, "new", expires_in=300)
    done = heal(kubeconfig, "--expired-only")
    assert done.returncode == 0, done.stderr
    assert "healed: Deployment streamspace/old scaled back to 2" in done.stdout
    assert replicas(kubeconfig, "old") == 2 and replicas(kubeconfig, "new") == 0


def test_expired_only_retries_while_kubernetes_is_briefly_unreachable(tmp_path):
    """The API comes up only after the reaper has failed once (a restart at the moment of expiry)."""
    from chaosstream.sandbox.kube import KubeEmulator, write_kubeconfig

    port = free_port()
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(str(kubeconfig), f"http://127.0.0.1:{port}", NS)
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), STREAMSPACE_NAMESPACE=NS, PYTHONPATH=str(ROOT))
    code = "from chaosstream.cli import run; run()"
    args = [sys.executable, "-c", code, "heal", "--expired-only", "--retry-for", "60"]
    emu = None
    with subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            # Start Kubernetes once the reaper has reported a failed attempt: the order, not a sleep, makes
            # the outage (a loaded machine may take seconds to start the process).
            first = proc.stderr.readline()
            assert "retrying" in first, first
            emu = KubeEmulator(None, port=port).start_in_thread()
            emu.create_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
            scaled_down(emu, "agent", expires_in=-1)
            out, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, out + err
            assert "healed: Deployment streamspace/agent scaled back to 2" in out
        finally:
            if proc.poll() is None:
                proc.kill()
            if emu is not None:
                emu.stop_in_thread()


def test_heal_gives_up_after_retry_for_with_one_sentence(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    from chaosstream.sandbox.kube import write_kubeconfig

    write_kubeconfig(str(kubeconfig), f"http://127.0.0.1:{free_port()}", NS)
    started = time.monotonic()
    done = heal(kubeconfig, "--expired-only", "--retry-for", "2")
    assert done.returncode == 1 and time.monotonic() - started < 20
    assert done.stderr.strip().splitlines()[-1].startswith("Error: ")


def session_record(emu, name: str, owner: str, expires_in: float, sessions: str) -> None:
    """A run's session record, as create_sessions writes it."""
    labels = {"app.kubernetes.io/managed-by": "chaosstream", "chaosstream.io/record": "sessions"}
    annotations = {"chaosstream.io/owner": owner, "chaosstream.io/expires-at": _iso(expires_in)}
    emu.create_object(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NS, "labels": labels, "annotations": annotations},
            "data": {"sessions": sessions, "api": "http://127.0.0.1:1"},
        }
    )


def test_expired_only_spares_the_live_runs_sessions_and_names_those_it_cannot_terminate(kube):
    """The reaper's mode while run runner-pod/7/abc holds the lock, with no StreamSpace credentials: the
    expired scale-down is healed; the live run's expired session record is spared (its sessions are in
    use); a dead run's expired record is named in one sentence (exit 1); a fresh one is not touched."""
    from kubernetes import client, config

    emu, kubeconfig = kube
    scaled_down(emu, "agent", expires_in=-5)
    live_lease(kubeconfig, renewed_ago=2)
    session_record(emu, "chaosstream-sessions-live", "runner-pod/7/abc", -5, '["live-1"]')
    session_record(emu, "chaosstream-sessions-dead", "gone-pod/9/def", -5, '["dead-1", "dead-2"]')
    session_record(emu, "chaosstream-sessions-fresh", "gone-pod/9/def", 300, '["fresh-1"]')
    blank = {"STREAMSPACE_USERNAME": "", "STREAMSPACE_PASSWORD": "", "STREAMSPACE_TOKEN": ""}
    done = heal(kubeconfig, "--expired-only", **blank)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "healed: Deployment streamspace/agent scaled back to 2" in done.stdout
    error = done.stderr.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error, error
    assert "no StreamSpace credentials" in error and "dead-1, dead-2" in error and "gone-pod/9/def" in error
    assert "live-1" not in error and "fresh-1" not in error
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    left = {c.metadata.name for c in core.list_namespaced_config_map(NS).items}
    assert {"chaosstream-sessions-live", "chaosstream-sessions-dead", "chaosstream-sessions-fresh"} <= left
