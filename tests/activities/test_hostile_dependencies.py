"""Hostile dependencies and leftovers: hung servers fail within the activity's bound with one sentence,
one bad fault record never blocks healing, the reaper outlives a brief Kubernetes outage, and secrets
never reach a process list or a helper's environment."""

import json
import os
import shutil
import time
from pathlib import Path

import psutil
import pytest
from chaoslib.exceptions import ActivityFailed
from helpers.procs import pid_alive
from helpers.sentences import assert_one_sentence
from helpers.servers import BlackHole, FixedHTTP
from helpers.waits import wait_for

from chaosstream import actions, probes
from chaosstream.clients.kube import Cluster
from chaosstream.faults.deadman import spawn_reaper
from chaosstream.faults.records import (
    EXPIRES_ANNOTATION,
    MANAGED_BY,
    OWNER_ANNOTATION,
    PARTITION_ANNOTATION_PREFIX,
    PARTITION_LABEL,
    RECORD_LABEL,
)
from chaosstream.sandbox.daemon.client import SandboxStartError, start_daemon, stop_daemon
from chaosstream.sandbox.kube import write_kubeconfig

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="exec partitions need root (pod network namespaces)"
)


@pytest.fixture(scope="module")
def hole():
    server = BlackHole()
    yield server
    server.close()


@pytest.fixture(scope="module")
def hung_kubeconfig(hole, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("hung") / "kubeconfig"
    write_kubeconfig(str(path), f"http://127.0.0.1:{hole.port}")
    return str(path)


KUBE_CALLS = [
    ("partition_agent", actions.partition_agent, {}),
    ("heal_agent_partition", actions.heal_agent_partition, {}),
    ("heal_all", actions.heal_all, {}),
    ("kill_agent_pod", actions.kill_agent_pod, {}),
    ("scale_agents", actions.scale_agents, {"replicas": 0}),
    ("agent_pods_ready", probes.agent_pods_ready, {}),
    ("agent_rollout_complete", probes.agent_rollout_complete, {}),
    ("create_sessions", actions.create_sessions, {}),  # its record is written before any session
]


@pytest.mark.parametrize("name, func, kwargs", KUBE_CALLS, ids=[c[0] for c in KUBE_CALLS])
def test_a_hung_kubernetes_api_fails_the_call_within_its_timeout(
    harness, hung_kubeconfig, name, func, kwargs
):
    """A cluster that accepts connections and never answers: the call fails within timeout + 1 s."""
    before = harness.snapshot()
    started = time.monotonic()
    with pytest.raises(ActivityFailed) as info:
        func(
            **kwargs,
            configuration=harness.configuration(streamspace_kube_timeout=2),
            secrets=harness.secrets(KUBECONFIG=hung_kubeconfig),
        )
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"{name} took {elapsed:.1f}s"
    assert_one_sentence(str(info.value), "in time")
    assert harness.snapshot() == before


def test_a_hung_database_fails_a_short_wait_within_its_timeout(harness, hole):
    """wait_for_commands_drained(timeout=2) against a PostgreSQL that accepts and never answers."""
    dsn = f"postgresql://chaos:pw@127.0.0.1:{hole.port}/streamspace"
    started = time.monotonic()
    with pytest.raises(ActivityFailed) as info:
        probes.wait_for_commands_drained(
            timeout=2, configuration=harness.configuration(), secrets=harness.secrets(db_dsn=dsn)
        )
    elapsed = time.monotonic() - started
    assert elapsed < 3.5, f"took {elapsed:.1f}s"
    assert_one_sentence(str(info.value), "database", secrets=("pw@",))


def test_a_hung_api_fails_a_probe_within_the_http_timeout(harness, hole):
    started = time.monotonic()
    with pytest.raises(ActivityFailed) as info:
        probes.agent_status(
            timeout=1.5,
            configuration=harness.configuration(streamspace_api_url=f"http://127.0.0.1:{hole.port}"),
            secrets=harness.secrets(),
        )
    assert time.monotonic() - started < 2.5
    assert_one_sentence(str(info.value), "did not answer")


@needs_root
def test_a_bad_exec_record_does_not_block_healing_and_its_rules_still_go(harness):
    """An exec partition whose record names a container that does not exist: heal_all still removes the
    live DROP rules (through the pod's other containers) and the record."""
    cfg, sec = harness.configuration(), harness.secrets()
    done = actions.partition_agent(method="exec", duration=60, configuration=cfg, secrets=sec)
    ((pod,),) = [done["pods"]]
    pid = done["partition_id"]
    key = PARTITION_ANNOTATION_PREFIX + pid
    record = json.loads(harness.core.read_namespaced_pod(pod, "streamspace").metadata.annotations[key])
    record["container"] = "no-such-container"
    harness.core.patch_namespaced_pod(
        pod, "streamspace", {"metadata": {"annotations": {key: json.dumps(record)}}}
    )
    cluster = Cluster(sec)
    container = harness.core.read_namespaced_pod(pod, "streamspace").spec.containers[0].name

    def rules() -> str:
        return cluster.exec("streamspace", pod, container, ["sh", "-c", "iptables -S OUTPUT"])[1]

    assert f"chaosstream-{pid}" in rules()

    healed = actions.heal_all(configuration=cfg, secrets=sec)["healed"]

    assert any(pid in item for item in healed), healed
    assert f"chaosstream-{pid}" not in rules()
    assert key not in (harness.core.read_namespaced_pod(pod, "streamspace").metadata.annotations or {})


def test_the_reaper_outlives_a_brief_kubernetes_outage(harness, tmp_path, monkeypatch):
    """At expiry the cluster is unreachable for ~3 s: the reaper retries and still deletes the policy."""
    name = "chaosstream-partition-reaperretry-0"
    body = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": dict(MANAGED_BY, **{PARTITION_LABEL: "reaperretry"})},
        "spec": {"podSelector": {"matchLabels": {"chaosstream.io/none": "x"}}, "policyTypes": ["Egress"]},
    }
    harness.net.create_namespaced_network_policy("streamspace", body)
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(str(kubeconfig), "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    spawn_reaper(["networkpolicy", "streamspace", name, "reaperretry", str(time.time() + 0.5)])
    time.sleep(3.0)

    def exists() -> bool:
        return name in [
            p.metadata.name for p in harness.net.list_namespaced_network_policy("streamspace").items
        ]

    assert exists(), "the reaper cannot have reached the cluster yet"
    time.sleep(0.05)
    shutil.copyfile(harness.env["KUBECONFIG"], kubeconfig)  # the cluster is back
    wait_for(lambda: not exists(), 6, "the policy deleted by the retrying reaper")


def test_the_reaper_gets_no_streamspace_secrets(monkeypatch):
    monkeypatch.setenv("STREAMSPACE_PASSWORD", "Reaper-Must-Not-See-5d1c")
    monkeypatch.setenv("STREAMSPACE_DB_DSN", "postgresql://u:Reaper-Dsn-9a7b@127.0.0.1:1/x")
    before = {p.pid for p in psutil.process_iter()}
    spawn_reaper(["replicas", "streamspace", "none", "never", str(time.time() + 30)])
    reaper = wait_for(
        lambda: [p for p in psutil.process_iter(["cmdline"]) if p.pid not in before
                 and "chaosstream.faults.reaper" in " ".join(p.info["cmdline"] or [])],
        5, "the reaper process",
    )[0]  # fmt: skip
    try:
        environ = Path(f"/proc/{reaper.pid}/environ").read_bytes()
        assert b"Reaper-Must-Not-See" not in environ and b"Reaper-Dsn" not in environ
    finally:
        reaper.kill()


def test_a_db_dsn_password_never_reaches_the_daemons_command_line(tmp_path, hole):
    """`sandbox up --db-dsn postgresql://user:pw@…`: the password is not in any process list."""
    secret = "Daemon-Dsn-Pa55-0e4f"
    state = tmp_path / "state"
    seen = []

    def look() -> None:
        for proc in psutil.process_iter(["cmdline"]):
            line = " ".join(proc.info["cmdline"] or [])
            if str(state) in line:
                seen.append(line)

    import threading

    stop = threading.Event()
    watcher = threading.Thread(target=lambda: [look() or time.sleep(0.05) for _ in iter(stop.is_set, True)])
    watcher.start()
    try:
        with pytest.raises(SandboxStartError):
            start_daemon(state, db_dsn=f"postgresql://chaos:{secret}@127.0.0.1:{hole.port}/x", timeout=4)
    finally:
        stop.set()
        watcher.join()
        stop_daemon(state)
    assert seen, "the daemon process was never seen"
    assert not any(secret in line for line in seen)
    daemon_pids = [
        p.pid for p in psutil.process_iter(["cmdline"]) if str(state) in " ".join(p.info["cmdline"] or [])
    ]
    assert not [p for p in daemon_pids if pid_alive(p)], "a daemon stuck in start-up was left running"


@needs_root
def test_a_rollback_undoes_only_its_own_runs_partition(harness):
    """Run B (another process) holds a partition; run A's `heal_agent_partition()` leaves it and names its
    owner; `any_run=true` (what `chaosstream heal` does) removes it."""
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "from chaosstream import actions\n"
        "cfg, sec = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n"
        "print(actions.partition_agent(method='exec', duration=60, configuration=cfg, secrets=sec)['partition_id'])\n"
    )
    cfg, sec = harness.configuration(), harness.secrets()
    other = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cfg), json.dumps(sec)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()[-1]
    try:
        mine = actions.heal_agent_partition(configuration=cfg, secrets=sec)
        assert mine["healed"] == [], mine
        assert any(other in item and "run " in item for item in mine["left"]), mine
        assert other in json.dumps(
            {k: v for p in harness.agent_pods().values() for k, v in (p.metadata.annotations or {}).items()}
        )
    finally:
        everyone = actions.heal_agent_partition(any_run=True, configuration=cfg, secrets=sec)
    assert any(other in item for item in everyone["healed"]), everyone


def _session_record(harness, name: str, owner: str, sessions_data: str, api: str) -> None:
    """A session record as another run's create_sessions leaves it (labels, owner, expiry, ids, API)."""
    harness.core.create_namespaced_config_map(
        "streamspace",
        {
            "metadata": {
                "name": name,
                "labels": dict(MANAGED_BY, **{RECORD_LABEL: "sessions"}),
                "annotations": {OWNER_ANNOTATION: owner, EXPIRES_ANNOTATION: "2000-01-01T00:00:00Z"},
            },
            "data": {"sessions": sessions_data, "api": api},
        },
    )


def _records(harness) -> set:
    items = harness.core.list_namespaced_config_map("streamspace", label_selector=f"{RECORD_LABEL}=sessions")
    return {c.metadata.name for c in items.items}


def test_hostile_session_records_never_block_healing_nor_get_our_credentials(harness, hole):
    """Three bad session records — not a JSON list, created on another API, on an API that hangs — and a
    live NetworkPolicy fault: heal_all heals the policy, reports each record with its owner within the
    HTTP timeout, never sends a request (credentials) to the other API, and leaves the records."""
    calls = []
    other = FixedHTTP(lambda m, p, b: calls.append((m, p)) or (200, "application/json", b"{}"))
    hung_api = f"http://127.0.0.1:{hole.port}"
    _session_record(harness, "chaosstream-sessions-garbled", "run/garbled", "not json", hung_api)
    _session_record(harness, "chaosstream-sessions-elsewhere", "run/elsewhere", '["s-1"]', other.url)
    _session_record(harness, "chaosstream-sessions-hung", "run/hung", '["s-2"]', hung_api)
    policy = "chaosstream-partition-hostilerec-0"
    harness.net.create_namespaced_network_policy(
        "streamspace",
        {
            "metadata": {"name": policy, "labels": dict(MANAGED_BY, **{PARTITION_LABEL: "hostilerec"})},
            "spec": {"podSelector": {"matchLabels": {"chaosstream.io/none": "x"}}, "policyTypes": ["Egress"]},
        },
    )
    try:
        started = time.monotonic()
        with pytest.raises(ActivityFailed) as info:
            actions.heal_all(
                configuration=harness.configuration(
                    streamspace_api_url=hung_api, streamspace_http_timeout=1.5
                ),
                secrets=harness.secrets(),
            )
        elapsed = time.monotonic() - started
        message = str(info.value)
        assert elapsed < 4.0, f"took {elapsed:.1f}s"
        assert f"NetworkPolicy streamspace/{policy}" in message, message  # healed all the same
        assert policy not in [
            p.metadata.name for p in harness.net.list_namespaced_network_policy("streamspace").items
        ]
        for owner, words in (("run/garbled", "JSON list"), ("run/elsewhere", "STREAMSPACE_API_URL"), ("run/hung", "did not answer")):  # fmt: skip
            assert f"(run {owner}): " in message and words in message, message
        assert calls == [], "credentials went to an API a ConfigMap named"
        assert harness.env["STREAMSPACE_PASSWORD"] not in message
        assert {
            "chaosstream-sessions-garbled",
            "chaosstream-sessions-elsewhere",
            "chaosstream-sessions-hung",
        } <= _records(harness)
    finally:
        other.close()
        for name in ("garbled", "elsewhere", "hung"):
            harness.core.delete_namespaced_config_map(f"chaosstream-sessions-{name}", "streamspace")


def test_a_rollback_terminates_only_its_own_runs_sessions(harness):
    """Run B (another process) created a session and recorded it; run A's rollback (terminate_sessions)
    terminates A's session only and deletes A's record only; heal_all then terminates B's and names B."""
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "from chaosstream import actions\n"
        "from chaosstream.faults.records import RUN_ID\n"
        "cfg, sec = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n"
        "print(actions.create_sessions(count=1, tags=['run-b'], configuration=cfg, secrets=sec)['sessions'][0], RUN_ID)\n"
    )
    from chaosstream.selection import start_run

    start_run()  # run A starts here: sessions earlier tests of this process made are not its own
    cfg, sec = harness.configuration(), harness.secrets()
    before = _records(harness)
    theirs, owner = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cfg), json.dumps(sec)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()[-2:]  # fmt: skip
    (mine,) = actions.create_sessions(count=1, tags=["run-a"], configuration=cfg, secrets=sec)["sessions"]
    assert len(_records(harness) - before) == 2
    rollback = actions.terminate_sessions(configuration=cfg, secrets=sec)
    assert list(rollback["terminated"]) == [mine], rollback
    (left,) = _records(harness) - before
    assert theirs in harness.core.read_namespaced_config_map(left, "streamspace").data["sessions"]
    assert harness.call(probes.session_state, session_id=theirs) not in ("terminating", "terminated")
    healed = actions.heal_all(configuration=cfg, secrets=sec)
    assert (
        [h for h in healed["healed"] if "sessions" in h]
        == [h for h in healed["healed"] if theirs in h and f"(run {owner})" in h]
        != []
    ), healed
    assert _records(harness) == before
    harness.call(probes.wait_for_commands_drained, session_ids=[mine, theirs], timeout=30)
