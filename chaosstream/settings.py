"""One place that turns Chaos Toolkit configuration + secrets + environment into typed settings.

Lookup order for every key (the chaosk8s convention): the experiment's `configuration` (or the
`streamspace` secrets scope for secrets), then the environment variable, then the default. Secrets
are never part of `repr()` and never logged.
"""

import dataclasses
import math
import os
import re
from typing import Any, Dict, Mapping, Optional
from urllib.parse import urlsplit, urlunsplit

from chaoslib.exceptions import ActivityFailed

__all__ = ["Settings", "resolve_settings", "redact", "SettingsError"]

SECRETS_SCOPE = "streamspace"


class SettingsError(ActivityFailed):
    """A configuration value is missing or malformed; the message names the key to fix."""


# configuration key -> (environment variable, default)
_CONFIG_KEYS: Dict[str, tuple] = {
    "streamspace_api_url": ("STREAMSPACE_API_URL", "http://localhost:8000"),
    "streamspace_namespace": ("STREAMSPACE_NAMESPACE", "streamspace"),
    # the chart's k8sAgent.config.sessionNamespace (values.yaml:147): where the agent puts session pods,
    # Services, PVCs and Session CRs (its NAMESPACE env); empty = the agent's own namespace
    "streamspace_session_namespace": ("STREAMSPACE_SESSION_NAMESPACE", None),
    "streamspace_agent_deployment": ("STREAMSPACE_AGENT_DEPLOYMENT", "streamspace-k8s-agent"),
    "streamspace_agent_selector": ("STREAMSPACE_AGENT_SELECTOR", "app.kubernetes.io/component=k8s-agent"),
    "streamspace_agent_container": ("STREAMSPACE_AGENT_CONTAINER", "k8s-agent"),
    "streamspace_verify_tls": ("STREAMSPACE_VERIFY_TLS", "true"),
    "streamspace_ca_cert": ("STREAMSPACE_CA_CERT", None),
    "streamspace_http_timeout": ("STREAMSPACE_HTTP_TIMEOUT", "10"),
    "streamspace_kube_timeout": ("STREAMSPACE_KUBE_TIMEOUT", "15"),
    "streamspace_db_statement_timeout_ms": ("STREAMSPACE_DB_STATEMENT_TIMEOUT_MS", "2000"),
    "streamspace_poll_interval": ("STREAMSPACE_POLL_INTERVAL", "0.5"),
    "streamspace_heartbeat_interval": ("STREAMSPACE_HEARTBEAT_INTERVAL", "30"),
    "streamspace_offline_threshold": ("STREAMSPACE_OFFLINE_THRESHOLD", "60"),
    "streamspace_reconnect_objective": ("STREAMSPACE_RECONNECT_OBJECTIVE", "30"),
    "streamspace_lock_dir": ("STREAMSPACE_LOCK_DIR", None),
}

# secret key -> environment variable
_SECRET_KEYS: Dict[str, str] = {
    "token": "STREAMSPACE_TOKEN",
    "username": "STREAMSPACE_USERNAME",
    "password": "STREAMSPACE_PASSWORD",
    "db_dsn": "STREAMSPACE_DB_DSN",
}

_NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything an activity needs to reach StreamSpace, its database and its cluster."""

    api_url: str
    namespace: str
    agent_deployment: str
    agent_selector: str
    agent_container: str
    verify_tls: bool
    ca_cert: Optional[str]
    http_timeout: float
    kube_timeout: float  # bounds every Kubernetes request (connect and read)
    db_statement_timeout_ms: int
    poll_interval: float
    heartbeat_interval: float
    offline_threshold: float
    reconnect_objective: float
    lock_dir: Optional[str]
    token: Optional[str] = dataclasses.field(default=None, repr=False)
    username: Optional[str] = None
    password: Optional[str] = dataclasses.field(default=None, repr=False)
    db_dsn: Optional[str] = dataclasses.field(default=None, repr=False)
    session_namespace_override: Optional[str] = None

    @property
    def session_namespace(self) -> str:
        """Where sessions' pods, Services, PVCs and CRs live: `streamspace_session_namespace`, else the
        agent's namespace (the chart's default)."""
        return self.session_namespace_override or self.namespace

    @property
    def verify(self) -> Any:
        """The value httpx wants for `verify`: a CA bundle path, or a bool."""
        if self.ca_cert:
            return self.ca_cert
        return self.verify_tls

    def secret_values(self) -> list:
        """Every secret string held, so that callers can scrub them from messages."""
        values = [self.token, self.password, self.db_dsn]
        if self.db_dsn:
            pw = urlsplit(self.db_dsn).password if "://" in self.db_dsn else None
            values.append(pw)
            match = re.search(r"password=(\S+)", self.db_dsn)
            if match:
                values.append(match.group(1))
        return [v for v in values if v]

    def require_db(self) -> str:
        if not self.db_dsn:
            raise SettingsError(
                "No database DSN is configured: set the secret 'db_dsn' in the 'streamspace' scope "
                '(and list "secrets": ["streamspace"] on the activity) or STREAMSPACE_DB_DSN.'
            )
        return self.db_dsn


def _lookup(configuration: Mapping[str, Any], key: str) -> Any:
    env_var, default = _CONFIG_KEYS[key]
    if key in configuration and configuration[key] is not None:
        return configuration[key]
    return os.environ.get(env_var, default)


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"Configuration '{key}' must be true or false, not {value!r}.")


# Longer than any timer or timeout StreamSpace has, short enough that time arithmetic never overflows.
_MAX_SECONDS = 86400.0
# PostgreSQL's statement_timeout is an int of milliseconds; an hour is already far beyond any probe.
_MAX_STATEMENT_TIMEOUT_MS = 3_600_000


def _as_float(key: str, value: Any, minimum: float = 0.0, allow_zero: bool = False) -> float:
    if isinstance(value, bool):
        raise SettingsError(f"Configuration '{key}' must be a number of seconds, not {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise SettingsError(f"Configuration '{key}' must be a number of seconds, not {value!r}.") from None
    if not math.isfinite(number) or number < minimum or (number == minimum and not allow_zero):
        raise SettingsError(
            f"Configuration '{key}' must be a finite number greater than {minimum:g}, not {value!r}."
        )
    if number > _MAX_SECONDS:
        raise SettingsError(f"Configuration '{key}' must be at most {_MAX_SECONDS:g} seconds, not {value!r}.")
    return number


def _check_token(token: Optional[str]) -> Optional[str]:
    """A bearer token goes into an HTTP header: printable ASCII, no spaces or line breaks (never quoted)."""
    if token is None:
        return None
    if not all(33 <= ord(ch) <= 126 for ch in token):
        raise SettingsError(
            "Secret 'token' (STREAMSPACE_TOKEN) must be printable ASCII without spaces or line breaks, as a JWT is: "
            "check how it was copied."
        )
    return token


def _check_url(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise SettingsError(
            "Configuration 'streamspace_api_url' must be a URL such as http://streamspace-api:8000."
        )
    try:
        parts = urlsplit(url.strip())
        hostname = parts.hostname
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        raise SettingsError(
            f"Configuration 'streamspace_api_url' is not a valid URL: {redact(url)!r}; IPv6 hosts are written "
            "http://[::1]:8000."
        ) from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise SettingsError(
            f"Configuration 'streamspace_api_url' must be an http(s) URL such as http://streamspace-api:8000, "
            f"not {redact(url)!r}."
        )
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise SettingsError(
            f"Configuration 'streamspace_api_url' has an invalid port: {redact(url)!r}."
        ) from None
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _check_dsn(dsn: Any) -> Optional[str]:
    if dsn is None or dsn == "":
        return None
    if not isinstance(dsn, str):
        raise SettingsError("Secret 'db_dsn' must be a PostgreSQL connection string.")
    if "://" in dsn:
        scheme = urlsplit(dsn).scheme
        if scheme not in ("postgres", "postgresql"):
            raise SettingsError(
                f"Secret 'db_dsn' must start with postgresql:// (or be a libpq key=value string), not {scheme}://."
            )
    elif "=" not in dsn:
        raise SettingsError("Secret 'db_dsn' must be a postgresql:// URL or a libpq 'key=value' string.")
    return dsn


def resolve_settings(configuration: Mapping[str, Any] = None, secrets: Mapping[str, Any] = None) -> Settings:
    """Build the settings of one activity call; raises `SettingsError` naming the key to fix."""
    configuration = configuration or {}
    if not isinstance(configuration, Mapping):
        raise SettingsError("The experiment's 'configuration' must be a mapping of keys to values.")
    secrets = secrets or {}
    if not isinstance(secrets, Mapping):
        raise SettingsError("The 'streamspace' secrets scope must be a mapping of keys to values.")
    # Chaos Toolkit passes the listed scopes merged into one flat dict; accept a nested scope too.
    if isinstance(secrets.get(SECRETS_SCOPE), Mapping):
        secrets = secrets[SECRETS_SCOPE]

    def secret(key: str) -> Optional[str]:
        value = secrets.get(key)
        if value in (None, ""):
            value = os.environ.get(_SECRET_KEYS[key]) or None
        if value is not None and not isinstance(value, str):
            raise SettingsError(f"Secret '{key}' must be a string.")
        return value

    namespace = str(_lookup(configuration, "streamspace_namespace") or "").strip()
    if not _NAMESPACE_RE.match(namespace):
        raise SettingsError(
            f"Configuration 'streamspace_namespace' must be a Kubernetes namespace name, not {namespace!r}."
        )
    session_namespace = str(_lookup(configuration, "streamspace_session_namespace") or "").strip() or None
    if session_namespace is not None and not _NAMESPACE_RE.match(session_namespace):
        raise SettingsError(
            "Configuration 'streamspace_session_namespace' must be a Kubernetes namespace name, "
            f"not {session_namespace!r}."
        )
    selector = str(_lookup(configuration, "streamspace_agent_selector") or "").strip()
    if not selector:
        raise SettingsError(
            "Configuration 'streamspace_agent_selector' must not be empty: an empty selector would match every pod."
        )
    deployment = str(_lookup(configuration, "streamspace_agent_deployment") or "").strip()
    if not _NAMESPACE_RE.match(deployment):
        raise SettingsError(
            f"Configuration 'streamspace_agent_deployment' must be a Deployment name, not {deployment!r}."
        )
    raw_timeout = _lookup(configuration, "streamspace_db_statement_timeout_ms")
    try:
        if isinstance(raw_timeout, bool) or isinstance(raw_timeout, float) and not raw_timeout.is_integer():
            raise ValueError
        statement_timeout = int(str(raw_timeout).strip())
    except (ValueError, OverflowError):
        raise SettingsError(
            "Configuration 'streamspace_db_statement_timeout_ms' must be whole milliseconds."
        ) from None
    if not 0 < statement_timeout <= _MAX_STATEMENT_TIMEOUT_MS:
        raise SettingsError(
            f"Configuration 'streamspace_db_statement_timeout_ms' must be between 1 and {_MAX_STATEMENT_TIMEOUT_MS} "
            f"milliseconds, not {raw_timeout!r}."
        )

    token, username, password = _check_token(secret("token")), secret("username"), secret("password")
    if username and not password:
        raise SettingsError(
            "Secret 'username' is set but 'password' is not: set both (or STREAMSPACE_PASSWORD), or give a token."
        )
    return Settings(
        api_url=_check_url(_lookup(configuration, "streamspace_api_url")),
        namespace=namespace,
        session_namespace_override=session_namespace,
        agent_deployment=deployment,
        agent_selector=selector,
        agent_container=str(_lookup(configuration, "streamspace_agent_container") or "k8s-agent"),
        verify_tls=_as_bool("streamspace_verify_tls", _lookup(configuration, "streamspace_verify_tls")),
        ca_cert=_lookup(configuration, "streamspace_ca_cert") or None,
        http_timeout=_as_float(
            "streamspace_http_timeout", _lookup(configuration, "streamspace_http_timeout")
        ),
        kube_timeout=_as_float(
            "streamspace_kube_timeout", _lookup(configuration, "streamspace_kube_timeout")
        ),
        db_statement_timeout_ms=statement_timeout,
        poll_interval=_as_float(
            "streamspace_poll_interval", _lookup(configuration, "streamspace_poll_interval")
        ),
        heartbeat_interval=_as_float(
            "streamspace_heartbeat_interval", _lookup(configuration, "streamspace_heartbeat_interval")
        ),
        offline_threshold=_as_float(
            "streamspace_offline_threshold", _lookup(configuration, "streamspace_offline_threshold")
        ),
        reconnect_objective=_as_float(
            "streamspace_reconnect_objective", _lookup(configuration, "streamspace_reconnect_objective")
        ),
        lock_dir=_lookup(configuration, "streamspace_lock_dir") or None,
        token=token,
        username=username,
        password=password,
        db_dsn=_check_dsn(secret("db_dsn")),
    )


def redact(text: Any, settings: Optional[Settings] = None) -> str:
    """Remove credentials from a message: URL passwords, bearer tokens, and any known secret value."""
    out = str(text)
    out = re.sub(r"(://[^:/@\s]+):[^@\s]+@", r"\1:***@", out)
    out = re.sub(r"(?i)(bearer\s+)[A-Za-z0-9._\-]+", r"\1***", out)
    out = re.sub(r"(?i)(password=)\S+", r"\1***", out)
    if settings is not None:
        for value in settings.secret_values():
            out = out.replace(value, "***")
    return out
