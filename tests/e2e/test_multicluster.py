"""Issue 14, multi-cluster: a second emulated cluster (its own kubeconfig context) whose agents carry the
same id prefix and dial the same control plane. An experiment run against context 2 hits cluster 2 only;
its probes, lock, heal, preflight and dead-man reaper all stay on context 2; cluster 1 is untouched."""

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml
from chaoslib.exceptions import ActivityFailed
from helpers import EXPERIMENTS, ROOT
from helpers.chaos import CHAOSSTREAM, chaos, run_args
from helpers.harness import Harness
from helpers.sentences import assert_one_sentence
from helpers.waits import wait_for
from kubernetes import client, config

from chaosstream import actions, probes
from chaosstream.journal.verdict import judge_file

NS = "streamspace"


def _env_file(path: Path) -> Dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _api(kubeconfig: str, context: str) -> Any:
    return config.new_client_from_config(config_file=kubeconfig, context=context)


def _replicas(api: Any) -> int:
    return client.AppsV1Api(api).read_namespaced_deployment("streamspace-k8s-agent", NS).spec.replicas


def _cli(*args: str, env: Dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([CHAOSSTREAM, *args], env=env, capture_output=True, text=True, timeout=90)


def test_an_experiment_against_context_2_hits_cluster_2_only(sandbox_factory, tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_CONTEXT", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    sb = sandbox_factory(clusters=2)
    env2 = _env_file(sb.state_dir / "sandbox-2.env")
    kubeconfig = sb.env["KUBECONFIG"]
    kube = yaml.safe_load(Path(kubeconfig).read_text())
    assert [c["name"] for c in kube["contexts"]] == ["sandbox", "sandbox-2"]
    servers = {c["name"]: c["cluster"]["server"] for c in kube["clusters"]}
    assert servers["sandbox"] != servers["sandbox-2"]  # two API servers, two stores
    one, two = _api(kubeconfig, "sandbox"), _api(kubeconfig, "sandbox-2")
    pods1 = {p.metadata.name for p in client.CoreV1Api(one).list_namespaced_pod(NS).items}
    pods2 = {p.metadata.name for p in client.CoreV1Api(two).list_namespaced_pod(NS).items}
    assert pods1 and pods2 and not pods1 & pods2
    h = Harness(sb)
    agents = {
        r[0]: r[1:] for r in h.sql("SELECT agent_id, region, status FROM agents WHERE status = 'online'")
    }
    # the same chart prefix in both clusters: only the region tells them apart
    assert agents == {"k8s-sandbox-1": ("sandbox", "online"), "k8s-sandbox-c2-1": ("sandbox-2", "online")}
    assert env2["KUBERNETES_CONTEXT"] == "sandbox-2" and env2["STREAMSPACE_AGENT_REGION"] == "sandbox-2"

    # -- an activity's own context (its secrets), with no KUBERNETES_CONTEXT nor KUBECONFIG in the
    #    runner's environment: the dead-man reaper and heal must act on cluster 2, never the default one
    sec2 = h.secrets(KUBERNETES_CONTEXT="sandbox-2")
    down = h.call(actions.scale_agents, replicas=0, duration=600, sec=sec2)
    assert down["previous_replicas"] == 1 and _replicas(two) == 0 and _replicas(one) == 1
    # a wait that reads another context than the fault's is refused, never answered from cluster 1
    with pytest.raises(ActivityFailed) as refused:
        h.call(probes.wait_for_agent_status, "offline", timeout=1)
    assert_one_sentence(str(refused.value), "kube context 'sandbox-2'")
    assert (
        h.call(probes.wait_for_agent_status, "offline", timeout=10, sec=sec2)["agentId"] == "k8s-sandbox-c2-1"
    )
    cli_env = sb.environ()  # KUBECONFIG of the sandbox, no KUBERNETES_CONTEXT: the current context
    nothing = _cli("heal", env=cli_env)  # the default context: cluster 1 has no fault
    assert nothing.returncode == 0 and "Nothing to heal" in nothing.stdout, nothing.stdout + nothing.stderr
    assert _replicas(two) == 0
    healed = _cli("heal", "--context", "sandbox-2", env=cli_env)
    assert healed.returncode == 0 and "in kube context sandbox-2" in healed.stdout, (
        healed.stdout + healed.stderr
    )
    assert _replicas(two) == 1
    h.call(actions.scale_agents, replicas=0, duration=2, sec=sec2)  # left to the detached reaper
    wait_for(lambda: _replicas(two) == 1, timeout=20, what="the reaper restoring cluster 2's Deployment")
    assert _replicas(one) == 1
    wait_for(
        lambda: h.call(probes.agents_online, min_count=1, region="sandbox-2", sec=sec2),
        timeout=20,
        what="cluster 2's agent back online",
    )
    # agent probes scoped by region see one cluster each, whatever the shared prefix
    assert h.call(probes.agents_online, min_count=2, agent_id_prefix="k8s-sandbox") is True
    assert (
        h.call(probes.agents_online, min_count=2, agent_id_prefix="k8s-sandbox", region="sandbox-2") is False
    )
    pods2 = {p.metadata.name for p in client.CoreV1Api(two).list_namespaced_pod(NS).items}

    # -- preflight against context 2
    check = _cli("check", "--context", "sandbox-2", str(EXPERIMENTS / "agent-heartbeat.json"), env=cli_env)
    assert "reachable (context sandbox-2)" in check.stdout, check.stdout + check.stderr

    # -- a live run lock held by someone else in cluster 1 must not stop a run on cluster 2
    now = dt.datetime.now(dt.UTC)
    client.CoordinationV1Api(one).create_namespaced_lease(
        NS,
        client.V1Lease(
            metadata=client.V1ObjectMeta(
                name="chaosstream-run-lock", annotations={"chaosstream.io/experiment": "x"}
            ),
            spec=client.V1LeaseSpec(
                holder_identity="other-runner/1/cafe",
                lease_duration_seconds=600,
                acquire_time=now,
                renew_time=now,
            ),
        ),
    )
    journal = tmp_path / "journal.json"
    proc = chaos(
        *run_args(EXPERIMENTS / "agent-heartbeat.json", journal, control_file=EXPERIMENTS / "controls.yaml"),
        env=sb.environ(**env2),
        cwd=ROOT,
        timeout=120,
    )
    doc, verdict = judge_file(str(journal))
    assert verdict.code == 0, (verdict.lines(), proc.stderr[-2000:])
    runs = {r["activity"]["name"]: r["output"] for r in doc["run"]}
    hit = runs["partition-the-agent-from-the-api"]
    assert set(hit["pods"]) <= pods2 and hit["agent_ids"] == ["k8s-sandbox-c2-1"]
    # cluster 2's own kube-apiserver Service is what the partition had to leave reachable, and it was
    kube1, kube2 = (
        client.CoreV1Api(a).read_namespaced_service("kubernetes", "default").spec for a in (one, two)
    )
    assert kube1.cluster_ip != kube2.cluster_ip
    assert hit["verified"] is True and [kube2.cluster_ip, 443] in hit["verification"][0]["still_reachable"], (
        hit
    )
    assert runs["offline-detection-time"]["agentId"] == "k8s-sandbox-c2-1"
    assert runs["recovery-time"]["agentId"] == "k8s-sandbox-c2-1"
    for phase in ("before", "after"):
        (online,) = [
            p for p in doc["steady_states"][phase]["probes"] if p["activity"]["name"] == "an-agent-is-online"
        ]
        assert online["output"]["agentId"] == "k8s-sandbox-c2-1"
    extensions = {e["name"]: e for e in doc["extensions"]}
    lock = extensions["chaosstream-safety"]["lock"]
    assert (
        lock["where"] == "Lease streamspace/chaosstream-run-lock (kube context sandbox-2)"
        and lock["released"]
    )
    assert extensions["chaosstream-timeline"]["target"]["kube_context"] == "sandbox-2"
    # cluster 1 untouched: its agent online in every timeline sample, no fault record, its lock as it was
    samples = extensions["chaosstream-timeline"]["samples"]
    assert samples and all(
        a["status"] == "online" for s in samples for a in s["agents"] if a["agentId"] == "k8s-sandbox-1"
    )
    for api in (one, two):
        core = client.CoreV1Api(api)
        assert not [
            p.metadata.name
            for p in core.list_namespaced_pod(NS).items
            if any(k.startswith("chaosstream.io/partition-") for k in (p.metadata.annotations or {}))
        ]
        assert not client.NetworkingV1Api(api).list_namespaced_network_policy(NS).items
    assert {p.metadata.name for p in client.CoreV1Api(one).list_namespaced_pod(NS).items} == pods1
    held = client.CoordinationV1Api(one).read_namespaced_lease("chaosstream-run-lock", NS)
    assert held.spec.holder_identity == "other-runner/1/cafe"


def test_per_pod_ids_in_two_clusters_name_and_approve_only_the_cluster_that_was_hit(
    sandbox_factory, tmp_path, monkeypatch
):
    """The chart's per-pod ids (`<prefix>-<POD_NAME>`, pending approval when new) in two clusters with the
    same prefix: a restart in cluster 2 is a finding naming cluster 2's new agent, and approving "what the
    run hit" approves that one only, never cluster 1's newcomer."""
    from chaosstream.selection import forget_agents

    monkeypatch.delenv("KUBERNETES_CONTEXT", raising=False)
    sb = sandbox_factory(clusters=2, faults=("agent-id-per-pod",))
    env2 = _env_file(sb.state_dir / "sandbox-2.env")
    kubeconfig = sb.env["KUBECONFIG"]
    one, two = _api(kubeconfig, "sandbox"), _api(kubeconfig, "sandbox-2")

    def pods(api):
        listed = client.CoreV1Api(api).list_namespaced_pod(
            NS, label_selector="app.kubernetes.io/component=k8s-agent"
        )
        return {p.metadata.name for p in listed.items if not p.metadata.deletion_timestamp}

    pods1, pods2 = pods(one), pods(two)
    assert env2["STREAMSPACE_AGENT_ID"] in {f"k8s-sandbox-{p}" for p in pods2}
    assert sb.env["STREAMSPACE_AGENT_ID"] in {f"k8s-sandbox-{p}" for p in pods1}
    h = Harness(sb)

    journal = tmp_path / "journal.json"
    chaos(
        *run_args(EXPERIMENTS / "agent-disconnect.json", journal),
        env=sb.environ(**env2),
        cwd=ROOT,
        timeout=180,
    )
    doc, verdict = judge_file(str(journal))
    assert verdict.code == 1, verdict.lines()
    (new2,) = pods(two) - pods2
    assert f"New agent k8s-sandbox-{new2} awaits approval" in journal.read_text()
    assert pods(one) == pods1  # cluster 1 untouched

    # a newcomer in cluster 1 too (its pod killed by hand), then "approve what the run hit" in cluster 2
    forget_agents()
    sec2 = h.secrets(KUBERNETES_CONTEXT="sandbox-2")
    h.call(actions.kill_agent_pod, sec=sec2)
    client.CoreV1Api(one).delete_namespaced_pod(min(pods1), NS)

    def pending():
        rows = h.sql("SELECT agent_id, region FROM agents WHERE approval_status = 'pending'")
        newcomers = {r[1] for r in rows if r[0] != f"k8s-sandbox-{new2}"}  # new2: the pod just killed
        return newcomers == {"sandbox", "sandbox-2"} and dict((r[0], r[1]) for r in rows)

    waiting = wait_for(pending, 30, "a pending newcomer in each cluster")
    out = h.call(actions.approve_agents, wait=False, sec=sec2)
    assert out["approved"] and all(waiting[a] == "sandbox-2" for a in out["approved"]), (out, waiting)
    left = dict(h.sql("SELECT agent_id, region FROM agents WHERE approval_status = 'pending'"))
    assert [a for a, region in waiting.items() if region == "sandbox"] == [
        a for a, region in left.items() if region == "sandbox"
    ]  # cluster 1's newcomer still awaits its own approval
    forget_agents()
