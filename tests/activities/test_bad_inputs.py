"""Bad inputs, ONE table for the whole catalog (probes, session actions, fault actions): every case gives
`ActivityFailed` with one readable sentence that holds no secret, before anything is touched, so the
sandbox is left exactly as it was (agents, sessions, commands, pods and their annotations, Deployments,
NetworkPolicies)."""

import base64
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Dict

import psycopg
import pytest
from chaoslib.exceptions import ActivityFailed
from helpers.net import free_port
from helpers.sentences import assert_one_sentence
from helpers.servers import FixedHTTP

from chaosstream import actions, probes
from chaosstream.sandbox.kube import write_kubeconfig
from chaosstream.sandbox.postgres import EmbeddedPostgres, apply_schema

DB_PASSWORD = "Db-Pa55word-4c7e"  # the password of the role 'chaos' on the password-protected server
WRONG_DB_PASSWORD = "Wr0ng-Db-Pa55-91f3"
WRONG_API_PASSWORD = "Wr0ng-Api-Pa55-77aa"
BAD_TOKEN = "not-a-jwt-token-5e1d9b"
ECHO_PASSWORD = "Ech0ed-Pa55word-2b8f"  # sent to an API whose error page echoes the request body
NON_ASCII_TOKEN = "eyJhbGciOi.tökén-ünicode.sig"
NEWLINE_TOKEN = "eyJhbGciOi.first-half\nsecond-half-3c9a"
UNKNOWN_SESSION = "admin-firefox-browser-00000000"


def _jwt(claims: Dict[str, Any]) -> str:
    def part(obj: Dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


EXPIRED_TOKEN = _jwt({"user_id": "admin", "role": "admin", "iss": "streamspace-api", "exp": 1_000_000_000})


@pytest.fixture(scope="module")
def dbs():
    """A second PostgreSQL with password authentication, holding an empty database, a Migrate()-only
    StreamSpace database (no migration 004/007) and a pre-agent (v1-like) one without sessions.agent_id."""
    base = Path(tempfile.mkdtemp(prefix="css-pg-auth-"))
    server = EmbeddedPostgres(base / "data")
    server.start()
    try:
        empty = server.create_database("empty")
        nomig = server.create_database("nomig")
        apply_schema(nomig, with_migrations=False)
        v1 = server.create_database("v1")
        apply_schema(v1, with_migrations=False)
        with psycopg.connect(v1, autocommit=True) as conn:
            conn.execute("ALTER TABLE sessions DROP COLUMN agent_id CASCADE")
        with psycopg.connect(server.dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE chaos LOGIN PASSWORD '{DB_PASSWORD}'")
            conn.execute("GRANT pg_read_all_data TO chaos")
            hba = Path(conn.execute("SHOW hba_file").fetchone()[0])
            hba.write_text("host all chaos 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
            conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.2)
        port = server.port
        yield {
            "empty": empty,
            "nomig": nomig,
            "v1": v1,
            "good_password": f"postgresql://chaos:{DB_PASSWORD}@127.0.0.1:{port}/nomig",
            "wrong_password": f"postgresql://chaos:{WRONG_DB_PASSWORD}@127.0.0.1:{port}/nomig",
        }
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    """Servers that are not what the configuration claims: an HTML page where the API should be, an API
    listing junk, an API whose error pages echo the request (password included), a CA file that is not a
    certificate, and a kubeconfig that points at an HTTP server that is not Kubernetes."""
    html = FixedHTTP(lambda m, p, b: (200, "text/html", b"<html><body>StreamSpace UI</body></html>"))
    junk = FixedHTTP(
        lambda m, p, b: (200, "application/json", b'{"agents": [null, 1, "x"], "sessions": [null]}')
    )
    echo = FixedHTTP(lambda m, p, b: (500, "text/plain", b"internal error while handling " + b))
    folder = tmp_path_factory.mktemp("odd")
    not_a_cert = folder / "ca.pem"
    not_a_cert.write_text("this is not a certificate\n")
    kubeconfig = folder / "kubeconfig-to-html"
    write_kubeconfig(str(kubeconfig), html.url)
    try:
        yield {
            "html_api": html.url,
            "junk_api": junk.url,
            "echo_api": echo.url,
            "not_a_cert": str(not_a_cert),
            "kubeconfig_not_kube": str(kubeconfig),
        }
    finally:
        for server in (html, junk, echo):
            server.close()


@pytest.fixture(scope="module")
def victim(harness):
    """A running session, so that 'changes nothing' covers sessions, commands and pods too."""
    created = harness.call(actions.create_sessions, count=1, tags=["bad-input-victim"])
    (sid,) = created["sessions"]
    harness.call(probes.wait_for_sessions_state, "running", session_ids=[sid], timeout=30)
    yield sid
    harness.call(actions.terminate_sessions, session_ids=[sid])
    harness.call(probes.wait_for_commands_drained, session_ids=[sid], timeout=30)


def test_probes_work_on_a_database_without_manual_migrations(harness, dbs):
    """Migrate() alone does not add agent_commands.updated_at (migration 004) nor the session
    termination columns (007); the probes must not need them."""
    with psycopg.connect(dbs["nomig"]) as conn:
        columns = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'agent_commands'"
        )}  # fmt: skip
    assert "updated_at" not in columns
    sec = harness.secrets(db_dsn=dbs["good_password"])
    assert harness.call(probes.queued_commands, sec=sec)["count"] == 0
    assert harness.call(probes.lost_commands, sec=sec)["count"] == 0
    assert harness.call(probes.wait_for_commands_drained, timeout=1, sec=sec)["drained"] == 0
    assert harness.call(probes.session_distribution, sec=sec)["sessions"] == 0
    assert harness.call(probes.no_sessions_placed_on, agent_status="offline", sec=sec)["ok"] is True


# (id, activity, kwargs, configuration overrides, secrets overrides, words the message must contain)
# Strings "{name}" are filled from the context built in the test (URLs, DSNs, the victim session).
# A refusal is quick. The one case that is refused only after the fact really injects, probes from the
# pod (up to 5 s) and rolls back through three exec round trips: 2.8 s on a quiet machine, 14.3 s seen on
# two cores running three test workers; its bound still catches a hang.
LIMITS = {"partition-ports-off-the-route": 30}
CASES = [
    # --- the API cannot be reached / refuses us -------------------------------------------------------
    ("api-closed-agent_status", probes.agent_status, {}, {"streamspace_api_url": "{closed}"}, {}, "Cannot reach"),
    ("api-closed-sessions_in_state", probes.sessions_in_state, {}, {"streamspace_api_url": "{closed}"}, {}, "Cannot reach"),
    ("api-closed-api_health", probes.api_health, {}, {"streamspace_api_url": "{closed}"}, {}, "Cannot reach"),
    ("api-closed-wait_for_agent_status", probes.wait_for_agent_status, {"timeout": 5}, {"streamspace_api_url": "{closed}"}, {}, "Cannot reach"),
    ("api-closed-create_sessions", actions.create_sessions, {}, {"streamspace_api_url": "{closed}"}, {}, "Cannot reach"),
    ("api-closed-terminate_sessions", actions.terminate_sessions, {"session_ids": ["{victim}"]}, {"streamspace_api_url": "{closed}"}, {}, "Cannot reach"),
    ("api-closed-hibernate_session", actions.hibernate_session, {"session_id": "{victim}"}, {"streamspace_api_url": "{closed}"}, {}, "Cannot reach"),
    ("wrong-password-agent_status", probes.agent_status, {}, {}, {"password": WRONG_API_PASSWORD}, "rejected the login"),
    ("wrong-password-create_sessions", actions.create_sessions, {}, {}, {"password": WRONG_API_PASSWORD}, "rejected the login"),
    ("wrong-password-terminate_sessions", actions.terminate_sessions, {"session_ids": ["{victim}"]}, {}, {"password": WRONG_API_PASSWORD}, "rejected the login"),
    ("wrong-password-wait_for_sessions_state", probes.wait_for_sessions_state, {"session_ids": ["{victim}"], "timeout": 5}, {}, {"password": WRONG_API_PASSWORD}, "rejected the login"),
    ("invalid-token-agent_status", probes.agent_status, {}, {}, {"token": BAD_TOKEN, "username": "", "password": ""}, "token"),
    # --- VNC streams and the API pods ---------------------------------------------------------------------
    ("api-closed-vnc_handshake", probes.vnc_handshake, {"session_id": "{victim}", "raise_on_failure": True}, {"streamspace_api_url": "{closed}"}, {}, "Cannot reach"),
    ("wrong-password-wait_for_vnc", probes.wait_for_vnc, {"session_ids": ["{victim}"], "timeout": 5}, {}, {"password": WRONG_API_PASSWORD}, "rejected the login"),
    ("invalid-token-vnc_handshake", probes.vnc_handshake, {"session_id": "{victim}", "raise_on_failure": True}, {}, {"token": BAD_TOKEN, "username": "", "password": ""}, "token"),
    ("negative-interval-monitor_streams", actions.monitor_streams, {"session_ids": ["{victim}"], "interval": -1}, {}, {}, "interval"),
    ("no-api-pod-restart_api_pod", actions.restart_api_pod, {"label_selector": "app=no-such-api"}, {}, {}, "ready API pod"),
    ("namespace-restart_api_pod", actions.restart_api_pod, {"namespace": "kube-system"}, {}, {}, "kube-system"),
    ("expired-token-session_state", probes.session_state, {"session_id": "{victim}"}, {}, {"token": EXPIRED_TOKEN, "username": "", "password": ""}, "token"),
    ("expired-token-terminate_session", actions.terminate_session, {"session_id": "{victim}"}, {}, {"token": EXPIRED_TOKEN, "username": "", "password": ""}, "token"),
    ("expired-token-wake_session", actions.wake_session, {"session_id": "{victim}"}, {}, {"token": EXPIRED_TOKEN, "username": "", "password": ""}, "token"),
    ("no-credentials-sessions_in_state", probes.sessions_in_state, {}, {}, {"username": "", "password": ""}, "credentials"),
    # --- unknown agent / session / command / template -------------------------------------------------
    ("unknown-agent-agent_status", probes.agent_status, {"agent_id": "k8s-nope"}, {}, {}, "k8s-nope"),
    ("unknown-prefix-agent_status", probes.agent_status, {"agent_id_prefix": "zzz"}, {}, {}, "zzz"),
    ("unknown-agent-heartbeat-api", probes.agent_heartbeat_age, {"agent_id": "k8s-nope"}, {}, {}, "k8s-nope"),
    ("unknown-agent-heartbeat-db", probes.agent_heartbeat_age, {"agent_id": "k8s-nope", "source": "db"}, {}, {}, "k8s-nope"),
    ("unknown-agent-wait_for_agent_status", probes.wait_for_agent_status, {"agent_id": "k8s-nope", "timeout": 0.5}, {}, {}, "k8s-nope"),
    ("unknown-agent-queued_commands", probes.queued_commands, {"agent_id": "k8s-nope"}, {}, {}, "k8s-nope"),
    ("unknown-agent-lost_commands", probes.lost_commands, {"agent_id": "k8s-nope"}, {}, {}, "k8s-nope"),
    ("unknown-agent-wait_for_commands_drained", probes.wait_for_commands_drained, {"agent_id": "k8s-nope", "timeout": 1}, {}, {}, "k8s-nope"),
    ("unknown-agent-no_sessions_placed_on", probes.no_sessions_placed_on, {"agent_id": "k8s-nope"}, {}, {}, "k8s-nope"),
    ("unknown-session-session_state", probes.session_state, {"session_id": UNKNOWN_SESSION}, {}, {}, UNKNOWN_SESSION),
    ("unknown-session-agent_for_session", probes.agent_for_session, {"session_id": UNKNOWN_SESSION}, {}, {}, UNKNOWN_SESSION),
    ("unknown-session-commands_for_session", probes.commands_for_session, {"session_id": UNKNOWN_SESSION}, {}, {}, UNKNOWN_SESSION),
    ("unknown-session-terminate_session", actions.terminate_session, {"session_id": UNKNOWN_SESSION}, {}, {}, UNKNOWN_SESSION),
    ("unknown-session-hibernate_session", actions.hibernate_session, {"session_id": UNKNOWN_SESSION}, {}, {}, UNKNOWN_SESSION),
    ("unknown-session-wake_session", actions.wake_session, {"session_id": UNKNOWN_SESSION}, {}, {}, UNKNOWN_SESSION),
    ("unknown-session-kill_session_pod", actions.kill_session_pod, {"session_id": UNKNOWN_SESSION}, {}, {}, UNKNOWN_SESSION),
    ("unknown-session-terminate_sessions-strict", actions.terminate_sessions, {"session_ids": [UNKNOWN_SESSION], "ignore_missing": False}, {}, {}, UNKNOWN_SESSION),
    ("unknown-tag-wait_for_session_pods", probes.wait_for_session_pods, {"tag": "no-such-tag", "timeout": 1}, {}, {}, "no-such-tag"),
    ("unknown-tag-wait_for_commands_drained", probes.wait_for_commands_drained, {"tag": "no-such-tag", "timeout": 1}, {}, {}, "no-such-tag"),
    ("unknown-tag-wait_for_sessions_state", probes.wait_for_sessions_state, {"tag": "no-such-tag", "timeout": 1}, {}, {}, "no-such-tag"),
    ("unknown-tag-kill_session_pod", actions.kill_session_pod, {"tag": "no-such-tag"}, {}, {}, "no-such-tag"),
    ("unknown-command-command_status", probes.command_status, {"command_id": "cmd-00000000"}, {}, {}, "cmd-00000000"),
    ("unknown-template-create_sessions", actions.create_sessions, {"template": "no-such-template"}, {}, {}, "404"),
    # --- the database: wrong port, wrong password, missing table / column, wrong DSN ------------------
    ("dsn-port-queued_commands", probes.queued_commands, {}, {}, {"db_dsn": "{dsn_closed}"}, "Cannot connect"),
    ("dsn-port-command_status", probes.command_status, {"command_id": "cmd-00000000"}, {}, {"db_dsn": "{dsn_closed}"}, "Cannot connect"),
    ("dsn-port-heartbeat-db", probes.agent_heartbeat_age, {"source": "db"}, {}, {"db_dsn": "{dsn_closed}"}, "Cannot connect"),
    ("dsn-port-session_distribution", probes.session_distribution, {}, {}, {"db_dsn": "{dsn_closed}"}, "Cannot connect"),
    ("dsn-port-wait_for_commands_drained", probes.wait_for_commands_drained, {"timeout": 2}, {}, {"db_dsn": "{dsn_closed}"}, "Cannot connect"),
    ("dsn-password-lost_commands", probes.lost_commands, {}, {}, {"db_dsn": "{dsn_wrong_password}"}, "password authentication failed"),
    ("dsn-password-agent_for_session", probes.agent_for_session, {"session_id": "{victim}"}, {}, {"db_dsn": "{dsn_wrong_password}"}, "password authentication failed"),
    ("dsn-password-no_sessions_placed_on", probes.no_sessions_placed_on, {"agent_status": "offline"}, {}, {"db_dsn": "{dsn_wrong_password}"}, "password authentication failed"),
    ("dsn-password-tag-selection", probes.sessions_survived, {"tag": "x"}, {}, {"db_dsn": "{dsn_wrong_password}"}, "password authentication failed"),
    ("dsn-no-tables-queued_commands", probes.queued_commands, {}, {}, {"db_dsn": "{dsn_empty}"}, "agent_commands"),
    ("dsn-no-tables-session_distribution", probes.session_distribution, {}, {}, {"db_dsn": "{dsn_empty}"}, "lacks a table"),
    ("dsn-v1-agent_for_session", probes.agent_for_session, {"session_id": "x"}, {}, {"db_dsn": "{dsn_v1}"}, "agent_id"),
    ("dsn-v1-sessions_assigned", probes.sessions_assigned, {"session_ids": ["x"]}, {}, {"db_dsn": "{dsn_v1}"}, "agent_id"),
    ("dsn-v1-session_distribution", probes.session_distribution, {}, {}, {"db_dsn": "{dsn_v1}"}, "lacks a column"),
    ("dsn-scheme", probes.queued_commands, {}, {}, {"db_dsn": "mysql://root:" + DB_PASSWORD + "@db/x"}, "db_dsn"),
    ("dsn-missing", probes.lost_commands, {}, {}, {"db_dsn": ""}, "DSN"),
    # --- blast radius: selectors, namespaces, counts --------------------------------------------------
    ("empty-selector-kill_agent_pod", actions.kill_agent_pod, {"label_selector": ""}, {}, {}, "label_selector"),
    ("blank-selector-kill_agent_pod", actions.kill_agent_pod, {"label_selector": "  "}, {}, {}, "label_selector"),
    ("empty-selector-config", actions.kill_agent_pod, {}, {"streamspace_agent_selector": ""}, {}, "streamspace_agent_selector"),
    ("namespace-restart_agent", actions.restart_agent, {"namespace": "kube-system"}, {}, {}, "kube-system"),
    ("namespace-kill_agent_pod", actions.kill_agent_pod, {"namespace": "default"}, {}, {}, "default"),
    ("namespace-scale_agents", actions.scale_agents, {"replicas": 0, "namespace": "default"}, {}, {}, "default"),
    ("namespace-kill_session_pod", actions.kill_session_pod, {"session_id": "{victim}", "namespace": "default"}, {}, {}, "default"),
    ("namespace-config", probes.agent_pods_ready, {}, {"streamspace_namespace": "Not_A_Namespace"}, {}, "streamspace_namespace"),
    ("too-many-sessions", actions.create_sessions, {"count": 51}, {}, {}, "max_count"),
    ("too-many-replicas", actions.scale_agents, {"replicas": 11}, {}, {}, "max_replicas"),
    ("zero-pods-kill_agent_pod", actions.kill_agent_pod, {"max_pods": 0}, {}, {}, "max_pods"),
    ("zero-pods-kill_session_pod", actions.kill_session_pod, {"session_id": "{victim}", "max_pods": 0}, {}, {}, "max_pods"),
    ("zero-sessions", actions.create_sessions, {"count": 0}, {}, {}, "count"),
    ("negative-replicas", actions.scale_agents, {"replicas": -2}, {}, {}, "replicas"),
    # --- negative / zero durations --------------------------------------------------------------------
    ("negative-timeout-wait_for_agent_status", probes.wait_for_agent_status, {"timeout": -1}, {}, {}, "timeout"),
    ("negative-timeout-wait_for_sessions_state", probes.wait_for_sessions_state, {"session_ids": ["{victim}"], "timeout": -1}, {}, {}, "timeout"),
    ("negative-timeout-wait_for_commands_drained", probes.wait_for_commands_drained, {"timeout": -5}, {}, {}, "timeout"),
    ("negative-poll-wait_for_agent_status", probes.wait_for_agent_status, {"poll_interval": -0.5}, {}, {}, "poll_interval"),
    ("negative-stuck_after-lost_commands", probes.lost_commands, {"stuck_after": -1}, {}, {}, "stuck_after"),
    ("negative-grace-kill_agent_pod", actions.kill_agent_pod, {"grace_period": -1}, {}, {}, "grace_period"),
    ("negative-grace-kill_session_pod", actions.kill_session_pod, {"session_id": "{victim}", "grace_period": -1}, {}, {}, "grace_period"),
    ("negative-timeout-restart_agent", actions.restart_agent, {"timeout": -1}, {}, {}, "timeout"),
    ("negative-timeout-agent_status", probes.agent_status, {"timeout": -1}, {}, {}, "timeout"),
    ("negative-timeout-heartbeat-db", probes.agent_heartbeat_age, {"source": "db", "timeout": -1}, {}, {}, "timeout"),
    ("negative-timeout-agent_for_session", probes.agent_for_session, {"session_id": "{victim}", "timeout": -1}, {}, {}, "timeout"),
    ("negative-timeout-terminate_sessions", actions.terminate_sessions, {"session_ids": ["{victim}"], "timeout": -1}, {}, {}, "timeout"),
    ("negative-timeout-terminate_session", actions.terminate_session, {"session_id": "{victim}", "timeout": -1}, {}, {}, "timeout"),
    ("negative-timeout-hibernate_session", actions.hibernate_session, {"session_id": "{victim}", "timeout": -1}, {}, {}, "timeout"),
    ("zero-timeout-create_sessions", actions.create_sessions, {"timeout": 0}, {}, {}, "timeout"),
    ("negative-timeout-sessions_survived", probes.sessions_survived, {"session_ids": ["{victim}"], "timeout": -1}, {}, {}, "timeout"),
    ("negative-latency-api_health", probes.api_health, {"max_latency_ms": -1}, {}, {}, "max_latency_ms"),
    ("negative-config-http-timeout", probes.agent_status, {}, {"streamspace_http_timeout": -1}, {}, "streamspace_http_timeout"),
    ("bad-since-no_sessions_placed_on", probes.no_sessions_placed_on, {"agent_status": "offline", "since": "yesterday"}, {}, {}, "since"),
    ("bad-since-lost_commands", probes.lost_commands, {"since": "last tuesday"}, {}, {}, "since"),
    # --- wrong types and values -----------------------------------------------------------------------
    ("type-min_count", probes.agents_online, {"min_count": "2"}, {}, {}, "min_count"),
    ("type-max_heartbeat_age", probes.agents_online, {"max_heartbeat_age": "old"}, {}, {}, "max_heartbeat_age"),
    ("type-count", actions.create_sessions, {"count": "3"}, {}, {}, "count"),
    ("type-tags", actions.create_sessions, {"tags": "one-tag"}, {}, {}, "tags"),
    ("type-max_count", actions.create_sessions, {"count": 2, "max_count": "5"}, {}, {}, "max_count"),
    ("type-replicas", actions.scale_agents, {"replicas": "1"}, {}, {}, "replicas"),
    ("type-max_replicas", actions.scale_agents, {"replicas": 0, "max_replicas": "10"}, {}, {}, "max_replicas"),
    ("type-states", probes.session_distribution, {"states": "running"}, {}, {}, "states"),
    ("type-limit", probes.queued_commands, {"limit": "ten"}, {}, {}, "limit"),
    ("type-stuck_after", probes.lost_commands, {"stuck_after": "60"}, {}, {}, "stuck_after"),
    ("type-min_ready", probes.agent_pods_ready, {"min_ready": "1"}, {}, {}, "min_ready"),
    ("type-timeout", probes.wait_for_agent_status, {"timeout": "5"}, {}, {}, "timeout"),
    ("type-max_pods", actions.kill_agent_pod, {"max_pods": True}, {}, {}, "max_pods"),
    ("type-label_selector", actions.kill_agent_pod, {"label_selector": 5}, {}, {}, "label_selector"),
    ("type-session_ids", actions.terminate_sessions, {"session_ids": "abc"}, {}, {}, "session_ids"),
    ("type-session_ids-items", probes.sessions_survived, {"session_ids": [1, 2]}, {}, {}, "session_ids"),
    ("type-session_ids-drained", probes.wait_for_commands_drained, {"session_ids": "abc", "timeout": 1}, {}, {}, "session_ids"),
    ("type-command_id", probes.command_status, {"command_id": 123}, {}, {}, "command_id"),
    ("value-status-wait", probes.wait_for_agent_status, {"status": "up"}, {}, {}, "status"),
    ("value-state", probes.sessions_in_state, {"state": "bogus"}, {}, {}, "state"),
    ("value-command-status", probes.queued_commands, {"status": "done"}, {}, {}, "status"),
    ("value-action", probes.queued_commands, {"action": "reboot"}, {}, {}, "action"),
    ("value-agent_status", probes.no_sessions_placed_on, {"agent_status": "bogus"}, {}, {}, "agent_status"),
    ("value-source", probes.agent_heartbeat_age, {"source": "kube"}, {}, {}, "source"),
    ("value-empty-session-hibernate", actions.hibernate_session, {"session_id": ""}, {}, {}, "session_id"),
    ("value-empty-session-wake", actions.wake_session, {"session_id": ""}, {}, {}, "session_id"),
    ("value-none-session_state", probes.session_state, {"session_id": None}, {}, {}, "session_id"),
    ("value-api-url", probes.agent_status, {}, {"streamspace_api_url": "ftp://example.org"}, {}, "streamspace_api_url"),
    ("value-poll-config", probes.wait_for_agent_status, {}, {"streamspace_poll_interval": "fast"}, {}, "streamspace_poll_interval"),
    # --- fault actions: partitions, heal scope, scaling, restarts, kills --------------------------------
    ("partition-unknown-method", actions.partition_agent, {"method": "iptables"}, {}, {}, "method"),
    ("partition-method-none", actions.partition_agent, {"method": None}, {}, {}, "method"),
    ("partition-negative-duration", actions.partition_agent, {"duration": -1}, {}, {}, "duration"),
    ("partition-zero-duration", actions.partition_agent, {"duration": 0}, {}, {}, "duration"),
    ("partition-string-duration", actions.partition_agent, {"duration": "60"}, {}, {}, "duration"),
    ("partition-bool-duration", actions.partition_agent, {"duration": True}, {}, {}, "duration"),
    ("partition-duration-over-max", actions.partition_agent, {"duration": 7200}, {}, {}, "max_duration"),
    ("partition-nan-duration", actions.partition_agent, {"duration": float("nan")}, {}, {}, "duration"),
    ("partition-empty-ports", actions.partition_agent, {"ports": []}, {}, {}, "ports"),
    ("partition-port-zero", actions.partition_agent, {"ports": [0]}, {}, {}, "ports"),
    ("partition-port-too-big", actions.partition_agent, {"ports": [70000]}, {}, {}, "ports"),
    ("partition-ports-string", actions.partition_agent, {"ports": "8000"}, {}, {}, "ports"),
    ("partition-port-bool", actions.partition_agent, {"ports": [True]}, {}, {}, "ports"),
    ("partition-port-as-string", actions.partition_agent, {"ports": ["8000"]}, {}, {}, "ports"),
    ("partition-zero-pods", actions.partition_agent, {"max_pods": 0}, {}, {}, "max_pods"),
    ("partition-string-pods", actions.partition_agent, {"max_pods": "1"}, {}, {}, "max_pods"),
    ("partition-empty-selector", actions.partition_agent, {"label_selector": ""}, {}, {}, "label_selector"),
    ("partition-blank-selector", actions.partition_agent, {"label_selector": "   "}, {}, {}, "label_selector"),
    ("partition-selector-not-string", actions.partition_agent, {"label_selector": 5}, {}, {}, "label_selector"),
    ("partition-selector-matches-nothing", actions.partition_agent, {"label_selector": "app=nothing-here"}, {}, {}, "app=nothing-here"),
    ("partition-other-namespace", actions.partition_agent, {"namespace": "kube-system"}, {}, {}, "kube-system"),
    ("partition-unknown-agent", actions.partition_agent, {"agent_id": "k8s-nope"}, {}, {}, "k8s-nope"),
    ("partition-destination-name", actions.partition_agent, {"destinations": ["streamspace-api:8000"]}, {}, {}, "destinations"),
    ("partition-destination-bare-port", actions.partition_agent, {"destinations": ["8000"]}, {}, {}, "destinations"),
    ("partition-destinations-string", actions.partition_agent, {"destinations": "10.0.0.1:8000"}, {}, {}, "destinations"),
    ("partition-ports-off-the-route", actions.partition_agent, {"ports": [443], "method": "exec"}, {}, {}, "stayed reachable"),
    ("partition-bad-start-timeout", actions.partition_agent, {"start_timeout": -1}, {}, {}, "start_timeout"),
    ("partition-empty-image", actions.partition_agent, {"image": ""}, {}, {}, "image"),
    ("partition-missing-kubeconfig", actions.partition_agent, {}, {}, {"KUBECONFIG": "/nonexistent/kubeconfig"}, "kubeconfig"),
    ("partition-bad-api-url", actions.partition_agent, {}, {"streamspace_api_url": "not a url"}, {}, "streamspace_api_url"),
    ("heal-other-namespace", actions.heal_agent_partition, {"namespace": "default"}, {}, {}, "default"),
    ("heal-all-other-namespace", actions.heal_all, {"namespace": "kube-system"}, {}, {}, "kube-system"),
    ("heal-all-missing-kubeconfig", actions.heal_all, {}, {}, {"KUBECONFIG": "/nonexistent/kubeconfig"}, "kubeconfig"),
    ("scale-negative-duration", actions.scale_agents, {"replicas": 0, "duration": -5}, {}, {}, "duration"),
    ("scale-zero-duration", actions.scale_agents, {"replicas": 0, "duration": 0}, {}, {}, "duration"),
    ("scale-string-duration", actions.scale_agents, {"replicas": 0, "duration": "600"}, {}, {}, "duration"),
    ("scale-negative-max", actions.scale_agents, {"replicas": 0, "max_replicas": -1}, {}, {}, "max_replicas"),
    ("scale-unknown-deployment", actions.scale_agents, {"replicas": 0, "deployment": "no-such-agent"}, {}, {}, "no-such-agent"),
    ("restart-unknown-deployment", actions.restart_agent, {"deployment": "no-such-agent"}, {}, {}, "no-such-agent"),
    ("kill-float-grace", actions.kill_agent_pod, {"grace_period": 1.5}, {}, {}, "grace_period"),
    ("kill-selector-matches-nothing", actions.kill_agent_pod, {"label_selector": "app=nothing-here"}, {}, {}, "app=nothing-here"),
    ("kill-standbys-word", actions.kill_agent_pod, {"standbys": "all"}, {}, {}, "standbys"),
    ("online-count-standbys-int", probes.agents_online, {"count_standbys": 1}, {}, {}, "count_standbys"),
    ("wait-online-count-standbys-word", probes.wait_for_agents_online, {"count_standbys": "yes"}, {}, {}, "count_standbys"),
    # --- values that are not what they claim (non-finite, wrong type, broken configuration) ---------------
    ("partition-inf-duration", actions.partition_agent, {"duration": float("inf")}, {}, {}, "duration"),
    ("partition-huge-duration", actions.partition_agent, {"duration": 1e300, "max_duration": 1e300}, {}, {}, "max_duration"),
    ("partition-inf-max-duration", actions.partition_agent, {"max_duration": float("inf")}, {}, {}, "max_duration"),
    ("partition-nan-start-timeout", actions.partition_agent, {"start_timeout": float("nan")}, {}, {}, "start_timeout"),
    ("partition-agent-id-int", actions.partition_agent, {"agent_id": 5}, {}, {}, "agent_id"),
    ("partition-namespace-int", actions.partition_agent, {"namespace": 5}, {}, {}, "namespace"),
    ("partition-id-int-heal", actions.heal_agent_partition, {"partition_id": 5}, {}, {}, "partition_id"),
    ("kill-namespace-int", actions.kill_agent_pod, {"namespace": 5}, {}, {}, "namespace"),
    ("scale-deployment-int", actions.scale_agents, {"replicas": 0, "deployment": 5}, {}, {}, "deployment"),
    ("scale-inf-duration", actions.scale_agents, {"replicas": 0, "duration": float("inf")}, {}, {}, "duration"),
    ("restart-nan-timeout", actions.restart_agent, {"timeout": float("nan")}, {}, {}, "timeout"),
    ("heal-all-expired-only-word", actions.heal_all, {"expired_only": "maybe"}, {}, {}, "expired_only"),
    ("heal-all-expired-only-int", actions.heal_all, {"expired_only": 1}, {}, {}, "expired_only"),
    ("wait-inf-timeout", probes.wait_for_sessions_state, {"state": "running", "timeout": float("inf")}, {}, {}, "timeout"),
    ("config-http-timeout-inf", probes.agent_status, {}, {"streamspace_http_timeout": "inf"}, {}, "streamspace_http_timeout"),
    ("config-http-timeout-nan", probes.api_health, {}, {"streamspace_http_timeout": "nan"}, {}, "streamspace_http_timeout"),
    ("config-poll-interval-huge", probes.agent_status, {}, {"streamspace_poll_interval": "1e300"}, {}, "streamspace_poll_interval"),
    ("config-kube-timeout-zero", actions.partition_agent, {}, {"streamspace_kube_timeout": 0}, {}, "streamspace_kube_timeout"),
    ("config-statement-timeout-huge", probes.queued_commands, {}, {"streamspace_db_statement_timeout_ms": "99999999999"}, {}, "statement_timeout"),
    ("config-statement-timeout-float", probes.queued_commands, {}, {"streamspace_db_statement_timeout_ms": 1.5}, {}, "statement_timeout"),
    ("config-ca-not-a-certificate", probes.agent_status, {}, {"streamspace_ca_cert": "{not_a_cert}"}, {}, "CA bundle"),
    ("config-broken-ipv6-url", probes.agent_status, {}, {"streamspace_api_url": "http://[::1:8000"}, {}, "streamspace_api_url"),
    ("secret-token-non-ascii", probes.agent_status, {}, {}, {"token": NON_ASCII_TOKEN, "username": "", "password": ""}, "token"),
    ("secret-token-newline", probes.agent_status, {}, {}, {"token": NEWLINE_TOKEN, "username": "", "password": ""}, "token"),
    ("api-answers-html-login", probes.agent_status, {}, {"streamspace_api_url": "{html_api}"}, {}, "token"),
    ("api-answers-html-agents", probes.agent_status, {}, {"streamspace_api_url": "{html_api}"}, {"token": EXPIRED_TOKEN, "username": "", "password": ""}, "not JSON"),
    ("api-answers-html-sessions", probes.sessions_in_state, {}, {"streamspace_api_url": "{html_api}"}, {"token": EXPIRED_TOKEN, "username": "", "password": ""}, "not JSON"),
    ("api-lists-junk-agents", probes.agents_online, {}, {"streamspace_api_url": "{junk_api}"}, {"token": EXPIRED_TOKEN, "username": "", "password": ""}, "list of objects"),
    ("api-lists-junk-sessions", probes.sessions_in_state, {}, {"streamspace_api_url": "{junk_api}"}, {"token": EXPIRED_TOKEN, "username": "", "password": ""}, "list of objects"),
    ("kubeconfig-not-kubernetes-partition", actions.partition_agent, {}, {}, {"KUBECONFIG": "{kubeconfig_not_kube}"}, "Kubernetes API server"),
    ("kubeconfig-not-kubernetes-heal", actions.heal_all, {}, {}, {"KUBECONFIG": "{kubeconfig_not_kube}"}, "Kubernetes API server"),
    ("kubeconfig-not-kubernetes-ready", probes.agent_pods_ready, {}, {}, {"KUBECONFIG": "{kubeconfig_not_kube}"}, "Kubernetes API server"),
    # --- the sessions kind (a run's session record): values, types, a cluster that cannot take the record ----
    ("sessions-inf-lifetime", actions.create_sessions, {"lifetime": float("inf")}, {}, {}, "lifetime"),
    ("sessions-nan-lifetime", actions.create_sessions, {"lifetime": float("nan")}, {}, {}, "lifetime"),
    ("sessions-negative-lifetime", actions.create_sessions, {"lifetime": -1}, {}, {}, "lifetime"),
    ("sessions-string-lifetime", actions.create_sessions, {"lifetime": "1h"}, {}, {}, "lifetime"),
    ("sessions-huge-lifetime", actions.create_sessions, {"lifetime": 1e300}, {}, {}, "lifetime"),
    ("sessions-user-int", actions.create_sessions, {"user": 5}, {}, {}, "user"),
    ("sessions-users-int", actions.create_sessions, {"users": 5}, {}, {}, "users"),
    ("sessions-template-int", actions.create_sessions, {"template": 5}, {}, {}, "template"),
    ("sessions-persistent-home-word", actions.create_sessions, {"persistent_home": "no"}, {}, {}, "persistent_home"),
    ("sessions-allow-unavailable-int", actions.create_sessions, {"allow_unavailable": 1}, {}, {}, "allow_unavailable"),
    ("sessions-ignore-missing-word", actions.terminate_sessions, {"session_ids": ["{victim}"], "ignore_missing": "no"}, {}, {}, "ignore_missing"),
    ("sessions-tag-int", actions.terminate_sessions, {"tag": 5}, {}, {}, "tag"),
    ("sessions-record-missing-kubeconfig", actions.create_sessions, {}, {}, {"KUBECONFIG": "/nonexistent/kubeconfig"}, "KUBECONFIG"),
    ("sessions-record-not-kubernetes", actions.create_sessions, {}, {}, {"KUBECONFIG": "{kubeconfig_not_kube}"}, "nothing was created"),
    ("sessions-record-kube-timeout-inf", actions.create_sessions, {}, {"streamspace_kube_timeout": "inf"}, {}, "streamspace_kube_timeout"),
    # --- secrets: an error page echoing the login request must not carry the password anywhere --------------
    ("secret-echoed-by-login-error", probes.agent_status, {}, {"streamspace_api_url": "{echo_api}"}, {"password": ECHO_PASSWORD}, "Login"),
    ("secret-echoed-by-create-error", actions.create_sessions, {}, {"streamspace_api_url": "{echo_api}"}, {"token": EXPIRED_TOKEN, "username": "", "password": ""}, "500"),
]  # fmt: skip


def _fill(value: Any, ctx: Dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in ctx:
        return ctx[value[1:-1]]
    if isinstance(value, list):
        return [_fill(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ctx) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case_id, func, kwargs, cfg, sec, needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_with_one_clean_sentence_and_changes_nothing(
    harness, victim, dbs, odd, case_id, func, kwargs, cfg, sec, needle
):
    ctx = {
        **odd,
        "closed": f"http://127.0.0.1:{free_port()}",
        "victim": victim,
        "dsn_closed": f"postgresql://postgres:{WRONG_DB_PASSWORD}@127.0.0.1:{free_port()}/streamspace",
        "dsn_wrong_password": dbs["wrong_password"],
        "dsn_empty": dbs["empty"],
        "dsn_v1": dbs["v1"],
    }
    configuration = harness.configuration(**_fill(cfg, ctx))
    secrets = harness.secrets(**_fill(sec, ctx))
    before = harness.snapshot()
    started = time.monotonic()
    with pytest.raises(ActivityFailed) as info:
        func(**_fill(kwargs, ctx), configuration=configuration, secrets=secrets)
    elapsed = time.monotonic() - started
    message = str(info.value)

    secrets = (
        harness.env["STREAMSPACE_PASSWORD"],
        WRONG_API_PASSWORD,
        BAD_TOKEN,
        EXPIRED_TOKEN,
        DB_PASSWORD,
        WRONG_DB_PASSWORD,
        ECHO_PASSWORD,
        NON_ASCII_TOKEN,
        NEWLINE_TOKEN,
        "first-half",
        "second-half",
    )
    assert_one_sentence(message, needle, secrets)
    assert elapsed < LIMITS.get(case_id, 8), f"{case_id} took {elapsed:.1f}s"

    time.sleep(0.1)  # anything started in the background (a reaper, a container) would show by now
    after = harness.snapshot()
    assert after == before, f"{case_id} changed the sandbox"
