"""Secrets never leak: the admin password, a JWT token and a DSN password must not appear in the
journal, the `chaos run` log file, `chaosstream verdict` output/JUnit, the HTML/Markdown report or an
exception message — on passing runs and on failing runs (wrong password, unreachable database)."""

import json
import os
import subprocess
from pathlib import Path
from typing import Dict, List

import httpx
import psycopg
import pytest
from helpers import EXPERIMENTS
from helpers.chaos import CHAOSSTREAM
from helpers.net import free_port

from drills._drill import run_heal

pytestmark = pytest.mark.slow

DSN_PASSWORD = "Dsn-S3cret-c0ffee-71"
WRONG_PASSWORD = "Wr0ng-Adm1n-Pa55-d00d"
CONTROL_FILE = EXPERIMENTS / "controls.yaml"


@pytest.fixture(scope="module")
def secret_env(shared_sandbox) -> Dict[str, str]:
    """The sandbox's secrets plus a DSN with a password (a second role) and a token from a real login."""
    env = shared_sandbox.env
    with psycopg.connect(env["STREAMSPACE_DB_DSN"], autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS chaos_reader")
        conn.execute(f"CREATE ROLE chaos_reader LOGIN PASSWORD '{DSN_PASSWORD}'")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO chaos_reader")
    dsn = env["STREAMSPACE_DB_DSN"].replace(
        "postgresql://postgres@", f"postgresql://chaos_reader:{DSN_PASSWORD}@"
    )
    token = httpx.post(
        env["STREAMSPACE_API_URL"] + "/api/v1/auth/login",
        json={"username": "admin", "password": env["STREAMSPACE_PASSWORD"]},
        timeout=10,
    ).json()["token"]
    return {"dsn": dsn, "token": token, "password": env["STREAMSPACE_PASSWORD"]}


def _run_and_render(sandbox, tmp_path: Path, experiment: str, env: Dict[str, str]) -> List[Path]:
    journal, log = tmp_path / "journal.json", tmp_path / "chaostoolkit.log"
    proc = sandbox.start_chaos_run(experiment, journal, env, control_file=CONTROL_FILE, log_file=log)
    output, _ = proc.communicate(timeout=180)
    (tmp_path / "chaos-output.txt").write_text(output)
    assert journal.exists(), output[-2000:]
    verdict = subprocess.run(
        [CHAOSSTREAM, "verdict", str(journal), "--junit", str(tmp_path / "junit.xml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    (tmp_path / "verdict.txt").write_text(verdict.stdout + verdict.stderr)
    report = subprocess.run(
        [
            CHAOSSTREAM,
            "report",
            str(journal),
            "--html",
            str(tmp_path / "r.html"),
            "--markdown",
            str(tmp_path / "r.md"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    (tmp_path / "report.txt").write_text(report.stdout + report.stderr)
    assert report.returncode == 0, report.stderr
    return [journal, log, tmp_path / "chaos-output.txt", tmp_path / "verdict.txt", tmp_path / "junit.xml",
            tmp_path / "r.html", tmp_path / "r.md", tmp_path / "report.txt"]  # fmt: skip


def _assert_no_secret(files: List[Path], secrets: List[str]) -> None:
    for path in files:
        assert path.exists(), f"{path.name} was not written"
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {path.name}"


CASES = {
    # name: (experiment, env overrides, expect a failing run)
    "password-and-dsn-password": ("command-retry.json", {"STREAMSPACE_DB_DSN": "{dsn}"}, False),
    "token-only": (
        "agent-heartbeat.json",
        {"STREAMSPACE_TOKEN": "{token}", "STREAMSPACE_USERNAME": "", "STREAMSPACE_PASSWORD": ""},
        False,
    ),
    "wrong-password": ("agent-heartbeat.json", {"STREAMSPACE_PASSWORD": WRONG_PASSWORD}, True),
    "unreachable-dsn-with-password": ("command-retry.json", {"STREAMSPACE_DB_DSN": "{closed_dsn}"}, True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_no_secret_in_journal_log_verdict_or_report(
    shared_sandbox, secret_env, tmp_path: Path, case: str
) -> None:
    experiment, overrides, failing = CASES[case]
    ctx = dict(secret_env, closed_dsn=f"postgresql://chaos_reader:{DSN_PASSWORD}@127.0.0.1:{free_port()}/x")
    env = {k: v.format(**ctx) for k, v in overrides.items()}
    files = _run_and_render(shared_sandbox, tmp_path, experiment, env)
    journal = (tmp_path / "journal.json").read_text()
    secrets = [secret_env["password"], secret_env["token"], DSN_PASSWORD, WRONG_PASSWORD]
    _assert_no_secret(files, secrets)
    if failing:
        assert '"status": "failed"' in journal or '"deviated": true' in journal, "expected a failing run"
        # exception paths were exercised: the journal holds the activity's failure sentence
        assert "ActivityFailed" in journal
    else:
        verdict = (tmp_path / "verdict.txt").read_text()
        assert "pass" in verdict.lower(), verdict
    assert os.path.getsize(tmp_path / "chaostoolkit.log") > 1000  # the log really has the run in it


def test_no_secret_in_the_session_record_nor_in_heals_output(shared_sandbox, secret_env) -> None:
    """The sessions kind: the record create_sessions writes (token and DSN password in use) holds none of
    them; `chaosstream heal` with a wrong password fails without quoting it or any other secret, and with
    the token terminates the session without printing it. A URL's user info never reaches a record."""
    from chaoslib.exceptions import ActivityFailed
    from kubernetes import client, config

    from chaosstream import actions
    from chaosstream.faults.sessions import public_url

    assert public_url(f"http://admin:{WRONG_PASSWORD}@127.0.0.1:8000/api/") == "http://127.0.0.1:8000/api"
    sandbox = shared_sandbox
    secrets = [secret_env["password"], secret_env["token"], DSN_PASSWORD, WRONG_PASSWORD]
    sec = {"token": secret_env["token"], "username": "", "password": "", "db_dsn": secret_env["dsn"],
           "KUBECONFIG": sandbox.env["KUBECONFIG"]}  # fmt: skip
    (sid,) = actions.create_sessions(
        count=1, tags=["secret-record"], configuration=sandbox.configuration(), secrets=sec
    )["sessions"]
    core = client.CoreV1Api(config.new_client_from_config(config_file=sandbox.env["KUBECONFIG"]))
    (record,) = core.list_namespaced_config_map(
        "streamspace", label_selector="chaosstream.io/record=sessions"
    ).items
    dumped = json.dumps(record.to_dict(), default=str)
    assert sid in dumped and not [s for s in secrets if s in dumped], "a secret in the session record"

    with pytest.raises(ActivityFailed) as refused:  # heal_all is what the CLI runs
        actions.heal_all(configuration=sandbox.configuration(), secrets=dict(sec, token="", password=WRONG_PASSWORD, username="admin"))  # fmt: skip
    assert "rejected the login" in str(refused.value), refused.value
    healed = run_heal(
        sandbox, STREAMSPACE_TOKEN=secret_env["token"], STREAMSPACE_USERNAME="", STREAMSPACE_PASSWORD=""
    )
    assert healed.returncode == 0 and f"healed: sessions {sid}" in healed.stdout, (
        healed.stdout + healed.stderr
    )
    for output in (str(refused.value), healed.stdout, healed.stderr):
        assert not [s for s in secrets if s in output], "a secret in heal's output"
