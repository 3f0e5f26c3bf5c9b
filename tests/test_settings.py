"""Settings resolution: configuration > secrets scope > environment > defaults, and clear errors."""

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosstream.settings import redact, resolve_settings

ENV_KEYS = [
    "STREAMSPACE_API_URL", "STREAMSPACE_NAMESPACE", "STREAMSPACE_TOKEN", "STREAMSPACE_USERNAME",
    "STREAMSPACE_PASSWORD", "STREAMSPACE_DB_DSN", "STREAMSPACE_AGENT_SELECTOR", "STREAMSPACE_POLL_INTERVAL",
    "STREAMSPACE_VERIFY_TLS", "STREAMSPACE_RECONNECT_OBJECTIVE",
]  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)


def test_defaults_follow_the_contract():
    s = resolve_settings()
    assert s.api_url == "http://localhost:8000"
    assert s.namespace == "streamspace"
    assert s.agent_deployment == "streamspace-k8s-agent"
    assert s.agent_selector == "app.kubernetes.io/component=k8s-agent"
    assert s.verify_tls is True
    assert s.reconnect_objective == 30.0
    assert s.token is None and s.db_dsn is None


def test_environment_then_configuration(monkeypatch):
    monkeypatch.setenv("STREAMSPACE_API_URL", "http://env-api:8000/")
    monkeypatch.setenv("STREAMSPACE_POLL_INTERVAL", "0.25")
    assert resolve_settings().api_url == "http://env-api:8000"
    assert resolve_settings().poll_interval == 0.25
    s = resolve_settings({"streamspace_api_url": "https://cfg-api"})
    assert s.api_url == "https://cfg-api"


def test_secrets_scope_beats_environment(monkeypatch):
    monkeypatch.setenv("STREAMSPACE_TOKEN", "env-token")
    monkeypatch.setenv("STREAMSPACE_DB_DSN", "postgresql://u:envpw@db/streamspace")
    assert resolve_settings().token == "env-token"
    s = resolve_settings(None, {"token": "scope-token"})
    assert s.token == "scope-token"
    nested = resolve_settings(None, {"streamspace": {"token": "nested-token"}})
    assert nested.token == "nested-token"
    assert s.db_dsn == "postgresql://u:envpw@db/streamspace"


def test_secrets_never_in_repr():
    s = resolve_settings(None, {"token": "tok-123", "username": "admin", "password": "pw-456",
                                "db_dsn": "postgresql://u:dbpw-789@db/x"})  # fmt: skip
    text = repr(s)
    for secret in ("tok-123", "pw-456", "dbpw-789"):
        assert secret not in text
    assert "dbpw-789" not in redact("failed: postgresql://u:dbpw-789@db/x", s)
    assert "pw-456" not in redact("login with pw-456 failed", s)


@pytest.mark.parametrize(
    "configuration, secrets, fragment",
    [
        ({"streamspace_api_url": "ftp://x"}, None, "streamspace_api_url"),
        ({"streamspace_api_url": "http://:99999"}, None, "streamspace_api_url"),
        ({"streamspace_namespace": "Bad_NS"}, None, "streamspace_namespace"),
        ({"streamspace_agent_selector": "  "}, None, "streamspace_agent_selector"),
        ({"streamspace_poll_interval": "-1"}, None, "streamspace_poll_interval"),
        ({"streamspace_poll_interval": "soon"}, None, "streamspace_poll_interval"),
        ({"streamspace_verify_tls": "maybe"}, None, "streamspace_verify_tls"),
        ({"streamspace_db_statement_timeout_ms": "0"}, None, "streamspace_db_statement_timeout_ms"),
        (None, {"username": "admin"}, "password"),
        (None, {"db_dsn": "mysql://x"}, "db_dsn"),
        (None, {"db_dsn": "just-a-host"}, "db_dsn"),
        (None, {"token": 42}, "token"),
        ("not-a-mapping", None, "configuration"),
    ],
)
def test_bad_configuration_is_one_sentence(configuration, secrets, fragment):
    with pytest.raises(ActivityFailed) as info:
        resolve_settings(configuration, secrets)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message and "Traceback" not in message
