"""`chaosstream check [EXPERIMENT]` against a real sandbox: one line per check, exit 6 on a failure,
before anything is injected."""

import os
import subprocess
import sys

import pytest
import yaml
from helpers import EXPERIMENTS, ROOT
from helpers.rbac import kubectl, service_account_kubeconfig
from helpers.sentences import assert_one_sentence

pytestmark = pytest.mark.slow


def check(sandbox, *args, **env):
    environ = dict(sandbox.environ(**env), PYTHONPATH=os.environ.get("PYTHONPATH", str(ROOT)))
    for key, value in list(env.items()):
        if value is None:
            environ.pop(key, None)
    return subprocess.run(
        [sys.executable, "-c", "from chaosstream.cli import run; run()", "check", *args],
        env=environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def lines(proc):
    return {line[6:].split(":", 1)[0]: line[:4].strip() for line in proc.stdout.splitlines() if line[:4].strip() in ("ok", "warn", "fail")}  # fmt: skip


def test_a_ready_sandbox_passes_every_check(shared_sandbox):
    proc = check(shared_sandbox, str(EXPERIMENTS / "agent-heartbeat.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = lines(proc)
    for name in ("api", "login", "admin role", "token lifetime", "kubernetes", "permissions", "pod security",
                 "agent deployment", "agent selector", "agent id", "control plane url", "database",
                 "database timezone"):  # fmt: skip
        assert seen.get(name) == "ok", (name, proc.stdout)
    assert proc.stdout.strip().endswith("preflight: ready.")


def test_a_bad_env_var_type_is_one_sentence_and_fails(shared_sandbox):
    proc = check(
        shared_sandbox, str(EXPERIMENTS / "agent-heartbeat.json"), STREAMSPACE_PARTITION_DURATION="sixty"
    )
    assert proc.returncode == 6 and not proc.stderr, proc.stderr
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("fail")]
    assert "STREAMSPACE_PARTITION_DURATION='sixty'" in line and "a number" in line
    assert_one_sentence(line.split(": ", 1)[1])


def test_missing_dsn_and_wrong_password_fail_with_what_to_do(shared_sandbox):
    proc = check(
        shared_sandbox,
        str(EXPERIMENTS / "agent-heartbeat.json"),
        STREAMSPACE_DB_DSN=None,
        STREAMSPACE_PASSWORD="nope",
    )
    assert proc.returncode == 6
    seen = lines(proc)
    assert seen["login"] == "fail" and seen["database"] == "fail", proc.stdout
    assert "STREAMSPACE_DB_DSN" in proc.stdout and "STREAMSPACE_PASSWORD" in proc.stdout


def test_the_cronjob_service_account_passes_and_an_unbound_one_is_told_what_is_denied(
    shared_sandbox, tmp_path
):
    admin = shared_sandbox.env["KUBECONFIG"]
    sa = service_account_kubeconfig(admin, tmp_path / "sa.kubeconfig")
    proc = check(shared_sandbox, str(EXPERIMENTS / "agent-heartbeat.json"), KUBECONFIG=str(sa))
    assert proc.returncode == 0, proc.stdout
    assert lines(proc)["permissions"] == "ok"
    assert lines(proc)["pod security"] == "warn"  # the Role cannot read Namespaces (cluster-scoped)

    # (kubectl's imperative `create serviceaccount` speaks protobuf, which the emulator does not)
    sa_yaml = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: nobody, namespace: streamspace}\n"
    kubectl(admin, "apply", "-f", "-", stdin=sa_yaml)
    token = kubectl(admin, "create", "token", "nobody", "-n", "streamspace").strip()
    nobody = tmp_path / "nobody.kubeconfig"
    nobody.write_text(sa.read_text().replace(sa.read_text().split("token: ")[1].split()[0], token))
    proc = check(shared_sandbox, str(EXPERIMENTS / "agent-heartbeat.json"), KUBECONFIG=str(nobody))
    assert proc.returncode == 6
    assert lines(proc)["kubernetes"] == "fail" and "forbidden" in proc.stdout.lower(), proc.stdout


def test_baseline_pod_security_refuses_net_admin_partitions(shared_sandbox):
    admin = shared_sandbox.env["KUBECONFIG"]
    label = "pod-security.kubernetes.io/enforce"
    kubectl(admin, "label", "namespace", "streamspace", f"{label}=baseline", "--overwrite")
    try:
        proc = check(shared_sandbox, str(EXPERIMENTS / "agent-heartbeat.json"))
        net_policy = check(
            shared_sandbox,
            str(EXPERIMENTS / "agent-heartbeat.json"),
            STREAMSPACE_PARTITION_METHOD="network-policy",
        )
    finally:
        kubectl(admin, "label", "namespace", "streamspace", f"{label}-")
    assert proc.returncode == 6 and lines(proc)["pod security"] == "fail", proc.stdout
    assert "refuses NET_ADMIN" in proc.stdout and "network-policy" in proc.stdout
    assert lines(net_policy)["pod security"] == "ok", net_policy.stdout


def test_as_a_control_a_failed_preflight_refuses_the_run_with_verdict_6(shared_sandbox, tmp_path):
    from helpers.chaos import chaos, run_args

    from chaosstream.journal.verdict import judge_file

    controls = tmp_path / "preflight.yaml"
    controls.write_text(
        "chaosstream-preflight:\n  provider:\n    type: python\n    module: chaosstream.controls.preflight\n"
    )
    env = shared_sandbox.environ()
    env.pop("STREAMSPACE_DB_DSN")
    journal = tmp_path / "journal.json"
    chaos(*run_args(EXPERIMENTS / "agent-heartbeat.json", journal, control_file=controls), env=env, cwd=ROOT)
    doc, verdict = judge_file(str(journal))
    assert doc["run"] == [] and verdict.code == 6, verdict.lines()
    assert "STREAMSPACE_DB_DSN" in verdict.lines()[0]


def test_ha_agents_need_get_on_their_lease_and_check_says_so(sandbox_factory, tmp_path):
    """HA agents (`--agent-replicas 3`, ENABLE_HA=true): faults find the leader from Lease
    streamspace-agent-<AGENT_ID>. The shipped Role grants it; a Role without it (the shape rbac.yaml had
    before) fails the preflight, and a kill refuses in one sentence instead of hitting a standby."""
    sb = sandbox_factory(agent_replicas=3)
    admin = sb.env["KUBECONFIG"]
    lease = f"streamspace-agent-{sb.env['STREAMSPACE_AGENT_ID']}"
    sa = service_account_kubeconfig(admin, tmp_path / "sa.kubeconfig")
    proc = check(sb, str(EXPERIMENTS / "multi-agent-failover.json"), KUBECONFIG=str(sa))
    assert lines(proc).get("ha leader") == "ok" and lease in proc.stdout, proc.stdout

    role = [d for d in yaml.safe_load_all((ROOT / "deploy/kubernetes/rbac.yaml").read_text()) if d["kind"] == "Role"][0]  # fmt: skip
    for rule in role["rules"]:
        if rule["resources"] == ["leases"]:
            rule["verbs"] = ["create"] if not rule.get("resourceNames") else ["get", "update", "delete"]
    kubectl(admin, "apply", "-f", "-", stdin=yaml.safe_dump(role))
    proc = check(sb, str(EXPERIMENTS / "multi-agent-failover.json"), KUBECONFIG=str(sa))
    assert proc.returncode == 6, proc.stdout
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("fail") and "ha leader" in x]
    assert lease in line and "grant get on leases" in line
    assert_one_sentence(line.split(": ", 1)[1])

    environ = dict(sb.environ(KUBECONFIG=str(sa)), PYTHONPATH=os.environ.get("PYTHONPATH", str(ROOT)))
    kill = subprocess.run(
        [sys.executable, "-c", "from chaosstream.actions import kill_agent_pod; kill_agent_pod()"],
        env=environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert kill.returncode != 0 and f"reading Lease streamspace/{lease}" in kill.stderr, kill.stderr
    from kubernetes import client, config

    core = client.CoreV1Api(config.new_client_from_config(admin))
    pods = core.list_namespaced_pod("streamspace", label_selector="app.kubernetes.io/component=k8s-agent")
    assert len(pods.items) == 3 and not any(p.metadata.deletion_timestamp for p in pods.items)  # none killed
