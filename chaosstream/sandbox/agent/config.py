"""Agent configuration, read from the environment exactly like StreamSpace's k8s-agent (``agents/k8s-agent/main.go``).

Sandbox-only extras: ``SANDBOX_TIMERS`` (a ``Timers.to_json()`` document), ``SANDBOX_FAULTS`` (comma list),
``SANDBOX_PROFILE`` (``intended`` or ``as-built``)
and ``SANDBOX_AGENT_ID_PREFIX`` (AGENT_ID = prefix + "-" + POD_NAME, as the Helm chart does).
"""

import dataclasses
import re
from typing import FrozenSet, Mapping, Optional

from chaosstream.sandbox.faults import validate_faults
from chaosstream.sandbox.profile import INTENDED, Profile, profile_named
from chaosstream.sandbox.timers import REAL, Timers

DEFAULT_HEARTBEAT_SECONDS = 30.0
# The real agent's Validate() turns a non-positive interval into 10 s.
NON_POSITIVE_HEARTBEAT_SECONDS = 10.0

_GO_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class ConfigError(ValueError):
    """The environment does not describe a startable agent (the process exits 1)."""


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """Everything the agent needs, already validated."""

    agent_id: str
    control_plane_url: str  # ws:// or wss:// form
    api_key: str
    platform: str = "kubernetes"
    region: str = ""
    namespace: str = "streamspace"
    kubeconfig: str = ""  # empty → in-cluster config
    max_sessions: int = 100
    max_cpu: str = "64 cores"
    max_memory: str = "256Gi"
    heartbeat_interval: float = DEFAULT_HEARTBEAT_SECONDS
    pod_name: str = ""
    timers: Timers = REAL
    faults: FrozenSet[str] = frozenset()
    profile: Profile = INTENDED  # SANDBOX_PROFILE: intended | as-built (the VNC tunnel's behaviour)

    @property
    def http_url(self) -> str:
        """The http(s) form of the control-plane URL, used for registration."""
        url = self.control_plane_url
        if url.startswith("wss"):
            return "https" + url[3:]
        if url.startswith("ws"):
            return "http" + url[2:]
        return url

    def capacity(self) -> dict:
        """Capacity block sent on registration and in every heartbeat."""
        return {"maxSessions": self.max_sessions, "cpu": self.max_cpu, "memory": self.max_memory}


def parse_go_duration(text: str) -> float:
    """Parse a Go ``time.ParseDuration`` string (``30s``, ``1m30s``, ``500ms``) into seconds."""
    text = text.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        match = _GO_DURATION_PART.match(body, pos)
        if not match:
            raise ValueError(f"invalid duration {text!r}")
        total += float(match.group(1)) * _GO_DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0:
        raise ValueError(f"invalid duration {text!r}")
    return sign * total


def parse_heartbeat_interval(raw: Optional[str]) -> float:
    """HEALTH_CHECK_INTERVAL: Go duration or integer seconds; unset/unparsable → 30 s; ≤0 → 10 s.

    Deviation: the real agent truncates durations to whole seconds (so ``500ms`` becomes 0 and then
    10 s); the sandbox keeps the fraction so compressed timer sets can use sub-second heartbeats.
    """
    value = DEFAULT_HEARTBEAT_SECONDS
    if raw:
        try:
            value = parse_go_duration(raw)
        except ValueError:
            try:
                value = float(int(raw.strip()))
            except ValueError:
                value = DEFAULT_HEARTBEAT_SECONDS
    return value if value > 0 else NON_POSITIVE_HEARTBEAT_SECONDS


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def load_config(env: Mapping[str, str]) -> AgentConfig:
    """Build the configuration from an environment mapping; raise ConfigError when it cannot start."""
    pod_name = env.get("POD_NAME", "")
    prefix = env.get("SANDBOX_AGENT_ID_PREFIX", "")
    if prefix:
        if not pod_name:
            raise ConfigError("SANDBOX_AGENT_ID_PREFIX is set but POD_NAME is empty")
        agent_id = f"{prefix}-{pod_name}"
    else:
        agent_id = env.get("AGENT_ID", "")
    if not agent_id:
        raise ConfigError("AGENT_ID is required (agent ID must be set)")

    url = env.get("CONTROL_PLANE_URL", "").rstrip("/")
    if not url:
        raise ConfigError("CONTROL_PLANE_URL is required (control plane URL must be set)")
    if not url.startswith(("ws://", "wss://")):
        raise ConfigError(f"CONTROL_PLANE_URL must start with ws:// or wss://, got {url!r}")

    api_key = env.get("AGENT_API_KEY", "")
    if not api_key:
        raise ConfigError("AGENT_API_KEY is required: set it to the 64-hex-character agent or bootstrap key")

    timers = REAL
    if env.get("SANDBOX_TIMERS"):
        try:
            timers = Timers.from_json(env["SANDBOX_TIMERS"])
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"SANDBOX_TIMERS is not a valid Timers JSON document: {exc}") from None

    fault_names = [name.strip() for name in env.get("SANDBOX_FAULTS", "").split(",") if name.strip()]
    try:
        faults = validate_faults(fault_names)
    except ValueError as exc:
        raise ConfigError(f"SANDBOX_FAULTS: {exc}") from None

    try:
        profile = profile_named(env.get("SANDBOX_PROFILE") or "intended")
    except ValueError as exc:
        raise ConfigError(f"SANDBOX_PROFILE: {exc}") from None

    return AgentConfig(
        agent_id=agent_id,
        control_plane_url=url,
        api_key=api_key,
        platform=env.get("PLATFORM") or "kubernetes",
        region=env.get("REGION", ""),
        namespace=env.get("NAMESPACE") or "streamspace",
        kubeconfig=env.get("KUBECONFIG", ""),
        max_sessions=_int_env(env, "MAX_SESSIONS", 100),
        max_cpu=env.get("MAX_CPU") or "64 cores",
        max_memory=env.get("MAX_MEMORY") or "256Gi",
        heartbeat_interval=parse_heartbeat_interval(env.get("HEALTH_CHECK_INTERVAL")),
        pod_name=pod_name,
        timers=timers,
        faults=faults,
        profile=profile,
    )


def is_hex_key(key: str) -> bool:
    """The control plane only accepts keys of exactly 64 hex characters."""
    return bool(re.fullmatch(r"[0-9a-fA-F]{64}", key))
