"""Sessions outlive a SIGKILLed run no more: the run recorded them in the cluster as it created them, and
`chaosstream heal` terminates exactly those (not the background tenants' sessions, nor a chaosstream-tagged
session nobody recorded), names the run they belonged to, and removes the record. Without StreamSpace
credentials heal says so in one sentence, exits 1, and still heals the run's Kubernetes fault.
Nothing secret is in the record, heal's output, or the local reaper's command line and environment."""

import json
import time
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from drills._drill import kill_when, kube, run_heal, scaled_down_expiry

pytestmark = pytest.mark.slow

TAG = "drill-heal"
SECRET_ENV = ("STREAMSPACE_PASSWORD", "STREAMSPACE_TOKEN", "STREAMSPACE_DB_DSN")


def _experiment(path: Path) -> Path:
    """Two sessions, then every agent scaled away and the run held open (a scale-down outlives it by 120 s)."""
    activity = lambda name, func, args, **extra: {  # noqa: E731
        "type": "action",
        "name": name,
        "provider": {"type": "python", "module": "chaosstream.actions", "func": func, "arguments": args},
        **extra,
    }
    path.write_text(
        json.dumps(
            {
                "version": "1.0.0",
                "title": "Sessions, then a total outage, killed before its rollbacks",
                "description": "The drill of tests/drills/test_sessions_heal.py.",
                "method": [
                    activity("create-sessions", "create_sessions", {"count": 2, "tags": [TAG]}),
                    activity(
                        "scale-the-agents-away",
                        "scale_agents",
                        {"replicas": 0, "duration": 120},
                        pauses={"after": 60},
                    ),
                ],
                "rollbacks": [
                    activity("terminate-created-sessions", "terminate_sessions", {}),
                    activity("restore-agents", "scale_agents", {"replicas": -1}),
                ],
            }
        )
    )
    return path


def _api_stops_since(dsn: str, since) -> set:
    """Sessions the API was asked to stop since `since`: its commands carry a payload, the tenants' none."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT session_id FROM agent_commands WHERE action = 'stop_session' AND payload IS NOT NULL"
            " AND created_at >= %s",
            (since,),
        ).fetchall()
    return {r[0] for r in rows}


def _wait_running(dsn: str, session: str, timeout: float = 30.0) -> None:
    """The bystander must run before the agents go: an agent scaled away mid-`start_session` leaves it
    `pending` for good (an acked command is never re-sent, command_dispatcher.go:315-320), which is the
    drill's timing on a loaded machine, not what heal does."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        with psycopg.connect(dsn) as conn:
            state = conn.execute("SELECT state FROM sessions WHERE id = %s", (session,)).fetchone()[0]
        if state == "running":
            return
        time.sleep(0.2)
    raise AssertionError(
        f"the bystander {session} is {state}, not running, {timeout:.0f}s after its creation"
    )


def _db_now(dsn: str):
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT localtimestamp").fetchone()[0]


def test_heal_terminates_exactly_the_sessions_of_a_sigkilled_run(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(tenants=True)
    env = sandbox.env
    core, apps, _ = kube(sandbox)
    ns = env["STREAMSPACE_NAMESPACE"]
    dsn = env["STREAMSPACE_DB_DSN"]
    secrets = [env["STREAMSPACE_PASSWORD"]]

    # a chaosstream-tagged session nobody recorded (another tool, a human): heal must leave it alone
    login = httpx.post(
        env["STREAMSPACE_API_URL"] + "/api/v1/auth/login",
        json={"username": env["STREAMSPACE_USERNAME"], "password": env["STREAMSPACE_PASSWORD"]},
        timeout=10,
    ).json()["token"]
    secrets.append(login)
    bystander = httpx.post(
        env["STREAMSPACE_API_URL"] + "/api/v1/sessions",
        json={"user": "admin", "template": "firefox-browser", "tags": ["chaosstream"],
              "resources": {"memory": "512Mi", "cpu": "250m"}},
        headers={"Authorization": f"Bearer {login}"},
        timeout=10,
    ).json()["name"]  # fmt: skip
    _wait_running(dsn, bystander)

    proc = sandbox.start_chaos_run(str(_experiment(tmp_path / "sessions-outage.json")), tmp_path / "j.json")
    kill_when(proc, lambda: scaled_down_expiry(sandbox), 60, "the agents scaled away")
    killed = time.monotonic()

    # the record: the run's two sessions, its owner, an expiry, the API; nothing secret
    (record,) = core.list_namespaced_config_map(ns, label_selector="chaosstream.io/record=sessions").items
    ours = json.loads(record.data["sessions"])
    owner = record.metadata.annotations["chaosstream.io/owner"]
    assert len(ours) == 2 and bystander not in ours
    assert record.data["api"] == env["STREAMSPACE_API_URL"]
    assert f"/{proc.pid}/" in owner and "chaosstream.io/expires-at" in record.metadata.annotations
    dumped = json.dumps(record.to_dict(), default=str)
    assert not [s for s in secrets if s in dumped], "a secret in the session record"
    for reaper in psutil.process_iter(["cmdline"]):
        if "chaosstream.faults.reaper" in " ".join(reaper.info["cmdline"] or []):
            text = " ".join(reaper.info["cmdline"]) + json.dumps(reaper.environ())
            assert not [k for k in SECRET_ENV if k in reaper.environ()] and not [
                s for s in secrets if s in text
            ]

    # 1. no credentials: the scale-down is healed, the sessions are left, and heal says so in one sentence
    since = _db_now(dsn)
    blind = run_heal(sandbox, STREAMSPACE_USERNAME="", STREAMSPACE_PASSWORD="", STREAMSPACE_TOKEN="")
    blind_s = time.monotonic() - killed
    assert blind.returncode == 1, blind.stdout + blind.stderr
    assert "healed: Deployment streamspace/streamspace-k8s-agent scaled back to 1" in blind.stdout
    error = blind.stderr.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error, error
    assert "no StreamSpace credentials" in error and all(s in error for s in ours) and owner in error, error
    assert _api_stops_since(dsn, since) == set()
    assert core.list_namespaced_config_map(ns, label_selector="chaosstream.io/record=sessions").items

    # 2. with the credentials (from the environment, as the CronJob's Secret gives them): exactly ours
    healed = run_heal(sandbox)
    healed_s = time.monotonic() - killed
    assert healed.returncode == 0, healed.stdout + healed.stderr
    lines = [line for line in healed.stdout.splitlines() if line.startswith("healed: sessions")]
    assert len(lines) == 1 and all(s in lines[0] for s in ours) and owner in lines[0], healed.stdout
    assert bystander not in healed.stdout
    assert _api_stops_since(dsn, since) == set(ours)
    assert not core.list_namespaced_config_map(ns, label_selector="chaosstream.io/record=sessions").items
    for output in (blind.stdout, blind.stderr, healed.stdout, healed.stderr):
        assert not [s for s in secrets if s in output]

    with psycopg.connect(dsn) as conn:
        states = dict(
            conn.execute("SELECT id, state FROM sessions WHERE id = ANY(%s)", (ours + [bystander],))
        )
    assert states[bystander] == "running", states
    assert {states[s] for s in ours} <= {"terminating", "terminated"}, states

    # 3. a record that lists a session older than itself (anyone who can write ConfigMaps here could
    #    write one naming a long-lived tenant session): refused in one sentence, the session left running
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE sessions SET created_at = now() - interval '10 minutes' WHERE id = %s", (bystander,)
        )
    core.create_namespaced_config_map(
        ns,
        {
            "metadata": {
                "name": "chaosstream-sessions-forged",
                "labels": {"app.kubernetes.io/managed-by": "chaosstream", "chaosstream.io/record": "sessions"},
                "annotations": {"chaosstream.io/owner": "forged/1/x", "chaosstream.io/expires-at": "2000-01-01T00:00:00Z"},
            },
            "data": {"sessions": json.dumps([bystander]), "api": env["STREAMSPACE_API_URL"]},
        },
    )  # fmt: skip
    since = _db_now(dsn)
    forged = run_heal(sandbox)
    assert forged.returncode == 1, forged.stdout + forged.stderr
    error = forged.stderr.strip()
    assert len(error.splitlines()) == 1 and bystander in error and "before the record was written" in error, (
        error
    )
    assert _api_stops_since(dsn, since) == set()
    with psycopg.connect(dsn) as conn:
        (state,) = conn.execute("SELECT state FROM sessions WHERE id = %s", (bystander,)).fetchone()
    assert state == "running"
    assert not core.list_namespaced_config_map(ns, label_selector="chaosstream.io/record=sessions").items
    print(
        f"\nsessions drill: heal without credentials {blind_s:.1f}s after the kill (scale-down healed, "
        f"2 sessions left), with credentials {healed_s:.1f}s after it (2 terminated, bystander and tenants untouched)"
    )
