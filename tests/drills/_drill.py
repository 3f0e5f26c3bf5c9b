"""Helpers shared by the drills: list every trace of chaosstream faults left in a sandbox (pods, rules,
processes, policies), heal, restart components and signal a run. Generic helpers (`wait_for`, starting
`chaos run`, the one-sentence assertion) are in tests/helpers."""

import glob
import json
import os
import signal
import subprocess
from typing import Any, Callable, Dict, List, Optional

import psutil
from helpers import ROOT
from helpers.chaos import CHAOSSTREAM
from helpers.sandbox import RunningSandbox
from helpers.waits import wait_for

PARTITION_ANNOTATION = "chaosstream.io/partition-"
PREVIOUS_REPLICAS = "chaosstream.io/previous-replicas"
MANAGED = "app.kubernetes.io/managed-by=chaosstream"


def kube(sandbox: RunningSandbox) -> Any:
    """A real kubernetes client (CoreV1Api, AppsV1Api, NetworkingV1Api) on the sandbox's kubeconfig."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=sandbox.env["KUBECONFIG"])
    return (
        client.CoreV1Api(api_client),
        client.AppsV1Api(api_client),
        client.NetworkingV1Api(api_client),
    )


def partition_ids(sandbox: RunningSandbox) -> Dict[str, Dict[str, Any]]:
    """Partition records on agent pods: id -> record (with the pod name)."""
    core, _, _ = kube(sandbox)
    found: Dict[str, Dict[str, Any]] = {}
    for pod in core.list_namespaced_pod(sandbox.env["STREAMSPACE_NAMESPACE"]).items:
        for key, raw in (pod.metadata.annotations or {}).items():
            if key.startswith(PARTITION_ANNOTATION):
                found[key[len(PARTITION_ANNOTATION) :]] = dict(json.loads(raw), pod=pod.metadata.name)
    return found


def netns_prefix(sandbox: RunningSandbox) -> str:
    """The sandbox's network namespace prefix `css<k>-` (as the kubelet names them)."""
    from chaosstream.sandbox.netns import SandboxNetwork
    from chaosstream.sandbox.stack import Sandbox, SandboxOptions

    instance = Sandbox(SandboxOptions(state_dir=sandbox.state_dir)).instance
    return SandboxNetwork(instance).prefix


def iptables_rules(sandbox: RunningSandbox) -> Dict[str, List[str]]:
    """Our OUTPUT rules (comment `chaosstream-…`) in every pod network namespace of the sandbox."""
    prefix = netns_prefix(sandbox)
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    rules: Dict[str, List[str]] = {}
    for line in names.splitlines():
        ns = line.split()[0] if line.strip() else ""
        if not ns.startswith(prefix):
            continue
        out = subprocess.run(
            ["ip", "netns", "exec", ns, "iptables", "-S", "OUTPUT"], capture_output=True, text=True
        ).stdout
        ours = [r for r in out.splitlines() if "chaosstream-" in r]
        if ours:
            rules[ns] = ours
    return rules


def tagged_processes(tag: str) -> List[str]:
    """Processes whose command line mentions `tag` (timers, ephemeral containers, exec'd sleeps)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if tag in cmdline and proc.pid != os.getpid():
            found.append(f"{proc.pid}: {cmdline[:120]}")
    return found


def leftovers(sandbox: RunningSandbox, partition_id: Optional[str] = None) -> Dict[str, Any]:
    """Every trace of a chaosstream fault in the sandbox; empty values mean clean."""
    core, apps, net = kube(sandbox)
    ns = sandbox.env["STREAMSPACE_NAMESPACE"]
    result: Dict[str, Any] = {
        "iptables": iptables_rules(sandbox),
        "policies": [
            p.metadata.name for p in net.list_namespaced_network_policy(ns, label_selector=MANAGED).items
        ],
        "scaled_down": [
            d.metadata.name
            for d in apps.list_namespaced_deployment(ns).items
            if PREVIOUS_REPLICAS in (d.metadata.annotations or {})
        ],
    }
    if partition_id:
        tag = f"chaosstream-{partition_id}"
        result["pid_files"] = glob.glob(f"/tmp/{tag}*.pid")
        result["processes"] = tagged_processes(tag)
    return result


def clean(found: Dict[str, Any]) -> bool:
    """True when `leftovers` found nothing."""
    return not any(found.values())


def run_heal(sandbox: RunningSandbox, **env: str) -> subprocess.CompletedProcess:
    """`chaosstream heal` against the sandbox, with `env` over its environment (e.g. no credentials)."""
    return subprocess.run(
        [CHAOSSTREAM, "heal"],
        env=sandbox.environ(**env),
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
    )


def heal_output(sandbox: RunningSandbox) -> str:
    """What `chaosstream heal` prints against the sandbox (it must succeed)."""
    proc = run_heal(sandbox)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def agent_online(sandbox: RunningSandbox, count: int = 1) -> bool:
    """True when `count` agents are online (the database, read-only)."""
    import psycopg

    with psycopg.connect(sandbox.env["STREAMSPACE_DB_DSN"]) as conn:
        rows = conn.execute("SELECT count(*) FROM agents WHERE status = 'online'").fetchone()
    return rows[0] >= count


def send(proc: subprocess.Popen, sig: int, group: bool = False) -> None:
    """Signal the run as a terminal (SIGINT to the process group) or Kubernetes (the process) would."""
    if group:
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)


def finish(proc: subprocess.Popen, timeout: float = 60) -> str:
    """Wait for the run to end and return its output."""
    out, _ = proc.communicate(timeout=timeout)
    return out or ""


def restart(sandbox: RunningSandbox, component: str) -> str:
    """`chaosstream sandbox restart COMPONENT` against this sandbox; returns its one line."""
    proc = subprocess.run(
        [CHAOSSTREAM, "sandbox", "restart", component, "--state-dir", str(sandbox.state_dir)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1, proc.stdout
    return proc.stdout.strip()


def scaled_down_expiry(sandbox: RunningSandbox) -> Optional[str]:
    """The agent Deployment's `chaosstream.io/expires-at` while chaosstream holds it at zero, else None."""
    _, apps, _ = kube(sandbox)
    dep = apps.read_namespaced_deployment("streamspace-k8s-agent", sandbox.env["STREAMSPACE_NAMESPACE"])
    if dep.spec.replicas == 0 and PREVIOUS_REPLICAS in (dep.metadata.annotations or {}):
        return dep.metadata.annotations["chaosstream.io/expires-at"]
    return None


def kill_when(proc: subprocess.Popen, ready: Callable[[], Any], timeout: float, what: str) -> Any:
    """Wait until `ready()` holds, then SIGKILL the run (as the OOM killer or a lost node would: no
    rollback can play); the run is ended even when `ready` never comes. Returns what `ready` returned."""
    try:
        value = wait_for(ready, timeout, what, 0.1)
        send(proc, signal.SIGKILL)
        proc.wait(10)
        return value
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
