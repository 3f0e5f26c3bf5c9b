"""Helpers shared by the drills: start `chaos run` like a terminal would, wait for a fault to be in
place, and list every trace of chaosstream faults left in a sandbox (pods, rules, processes, policies)."""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import psutil

from tests.conftest import EXPERIMENTS, ROOT, RunningSandbox

PARTITION_ANNOTATION = "chaosstream.io/partition-"
PREVIOUS_REPLICAS = "chaosstream.io/previous-replicas"
MANAGED = "app.kubernetes.io/managed-by=chaosstream"
CHAOSSTREAM = shutil.which("chaosstream") or str(Path(sys.executable).parent / "chaosstream")


def environ(sandbox: RunningSandbox, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The process environment plus the sandbox's, with `extra` overriding both (RunningSandbox.environ
    raises when `extra` repeats a key of the sandbox env, e.g. STREAMSPACE_PARTITION_DURATION)."""
    return {**os.environ, **sandbox.env, **(extra or {})}


def kube(sandbox: RunningSandbox) -> Any:
    """A real kubernetes client (CoreV1Api, AppsV1Api, NetworkingV1Api) on the sandbox's kubeconfig."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=sandbox.env["KUBECONFIG"])
    return (
        client.CoreV1Api(api_client),
        client.AppsV1Api(api_client),
        client.NetworkingV1Api(api_client),
    )


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g}s")
        time.sleep(interval)


def start_chaos(
    sandbox: RunningSandbox,
    experiment: str,
    journal: Path,
    extra_env: Optional[Dict[str, str]] = None,
    control_file: Optional[Path] = None,
    log_file: Optional[Path] = None,
) -> subprocess.Popen:
    """`chaos run` in its own session (its own process group), as a terminal or a pod would run it."""
    cmd = [sys.executable, "-m", "chaostoolkit", "--no-version-check"]
    cmd += ["--log-file", str(log_file)] if log_file else ["--no-log-file"]
    cmd += ["run", "--journal-path", str(journal)]
    if control_file is not None:
        cmd += ["--control-file", str(control_file)]
    cmd.append(str(EXPERIMENTS / experiment))
    return subprocess.Popen(
        cmd,
        env=environ(sandbox, extra_env),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
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
    from chaosstream.sandbox.runtime import Sandbox, SandboxOptions

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


def heal_output(sandbox: RunningSandbox) -> str:
    """What `chaosstream heal` prints against the sandbox."""
    proc = subprocess.run(
        [CHAOSSTREAM, "heal"],
        env=environ(sandbox),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
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


__all__ = [
    "kube",
    "wait_for",
    "start_chaos",
    "partition_ids",
    "iptables_rules",
    "tagged_processes",
    "leftovers",
    "clean",
    "heal_output",
    "agent_online",
    "send",
    "finish",
    "signal",
]


def snapshot(sandbox: RunningSandbox) -> Dict[str, Any]:
    """What a bad input must not change: agents, sessions and commands rows; pods (with annotations),
    Deployments (replicas, annotations) and NetworkPolicies."""
    import psycopg

    core, apps, net = kube(sandbox)
    ns = sandbox.env["STREAMSPACE_NAMESPACE"]
    with psycopg.connect(sandbox.env["STREAMSPACE_DB_DSN"]) as conn:
        rows = {
            "agents": conn.execute("SELECT agent_id, approval_status FROM agents ORDER BY 1").fetchall(),
            "sessions": conn.execute("SELECT id, state, agent_id FROM sessions ORDER BY 1").fetchall(),
            "commands": conn.execute("SELECT command_id, status FROM agent_commands ORDER BY 1").fetchall(),
        }
    rows["pods"] = sorted(
        (p.metadata.name, json.dumps(p.metadata.annotations or {}, sort_keys=True), p.status.phase)
        for p in core.list_namespaced_pod(ns).items
    )
    rows["deployments"] = sorted(
        (d.metadata.name, d.spec.replicas, json.dumps(d.metadata.annotations or {}, sort_keys=True))
        for d in apps.list_namespaced_deployment(ns).items
    )
    rows["policies"] = sorted(p.metadata.name for p in net.list_network_policy_for_all_namespaces().items)
    return rows


def assert_one_sentence(message: str, *secrets: str) -> None:
    """ONE readable sentence: no traceback, no newline, no secret, no bearer token."""
    import re

    assert "\n" not in message and "Traceback" not in message and 'File "' not in message, message
    assert 20 <= len(message) <= 400, message
    assert message[0].isupper() or message[0] in "'\"", message
    assert message.rstrip().endswith((".", ")", "?")), message
    for secret in secrets:
        if secret:
            assert secret not in message, f"secret leaked in: {message}"
    assert not re.search(r"(?i)bearer\s+\w", message), message


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
