"""Platform probes: API health, agent rollout and pod readiness."""

from typing import Any, Dict

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosstream.arguments import seconds, whole
from chaosstream.clients.kube import pod_ready
from chaosstream.clients.rollout import agent_pods, rollout_state
from chaosstream.clients.streamspace import api_client
from chaosstream.settings import resolve_settings

__all__ = ["api_health", "agent_rollout_complete", "agent_pods_ready"]


def api_health(
    max_latency_ms: float = 1000.0,
    raise_on_failure: bool = False,
    timeout: float = 5.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """`GET /health` of the StreamSpace API (no auth, static: it answers while agents are down).

    Returns `{"healthy": bool, "status_code": int, "latency_ms": float}`; `healthy` needs a 200 with
    `{"status": "healthy"}` within `max_latency_ms`. Raises `ActivityFailed` if the API is unreachable,
    and, with `raise_on_failure=true` (for a method), when it is not healthy.

    Tolerance example: `{"type": "regex", "pattern": "^True$", "target": "healthy"}`.
    """
    settings = resolve_settings(configuration, secrets)
    if (
        isinstance(max_latency_ms, bool)
        or not isinstance(max_latency_ms, (int, float))
        or not max_latency_ms > 0
    ):
        raise ActivityFailed(f"Argument 'max_latency_ms' must be greater than 0, not {max_latency_ms!r}.")
    with api_client(settings, timeout=seconds(timeout, "timeout")) as api:
        code, body, latency = api.health()
    healthy = (
        code == 200
        and isinstance(body, dict)
        and body.get("status") == "healthy"
        and latency <= max_latency_ms
    )
    return {"healthy": healthy, "status_code": code, "latency_ms": round(latency, 2)}


def agent_rollout_complete(configuration: Configuration = None, secrets: Secrets = None) -> bool:
    """True when the agent Deployment's rollout is finished: every replica updated and available and no
    old pod still terminating (as `kubectl rollout status` judges it).

    Tolerance example: `true`.
    """
    complete, _ = rollout_state(resolve_settings(configuration, secrets), secrets)
    return complete


def agent_pods_ready(
    min_ready: int = 1, configuration: Configuration = None, secrets: Secrets = None
) -> bool:
    """True when at least `min_ready` agent pods (label `streamspace_agent_selector`) are Ready and not
    terminating.

    Tolerance example: `true`.
    """
    whole(min_ready, "min_ready", minimum=0)
    settings = resolve_settings(configuration, secrets)
    ready = sum(1 for pod in agent_pods(settings, secrets) if pod_ready(pod))
    return ready >= min_ready
