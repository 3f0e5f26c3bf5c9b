"""Timer sets of the sandbox: StreamSpace's real values and a compressed set for fast runs.

The real values are StreamSpace's own (docs/streamspace.md#34-timers). The fast set keeps the
same ratios where they matter (the stale threshold is a few heartbeats, the selector window is wider
than the stale threshold) so that every experiment exercises the same logic in seconds.
"""

import dataclasses
import json
from typing import Dict, List, Tuple


@dataclasses.dataclass(frozen=True)
class Timers:
    heartbeat_interval: float  # agent → CP `heartbeat` message period (HEALTH_CHECK_INTERVAL)
    stale_threshold: float  # hub unregisters an agent after this long without a heartbeat
    sweep_interval: float  # how often the hub looks for stale agents
    selector_window: float  # placement needs last_heartbeat within this window
    reconnect_backoff: Tuple[float, ...]  # agent reconnect delays, the list loops forever
    approval_retry: float  # a pending agent re-registers this often
    reconciler_interval: float
    reconciler_stuck: float  # "stuck" after this long in a transitional state
    reconciler_force: float  # force terminate / fail after this long without an agent
    ws_ping_interval: float
    ws_read_deadline: float
    start_timeout: float  # agent waits this long for a Ready session pod

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Timers":
        data = json.loads(text)
        data["reconnect_backoff"] = tuple(data["reconnect_backoff"])
        return cls(**data)

    @property
    def is_real(self) -> bool:
        """StreamSpace's own 30 s heartbeat (or slower): objectives use StreamSpace's own values."""
        return self.heartbeat_interval >= 30.0

    def objectives(self) -> Dict[str, float]:
        """Objectives the experiments check, exported in the env file.

        Offline detection: StreamSpace's heartbeat test allows 2 missed heartbeats. Reconnect: the seed
        target of integration test 3.1 (30 s) with real timers; 5 s with fast timers, still well below the
        slow-reconnect fault (the whole backoff list). Drain: reconnect plus the 30 s test 3.2 waits.
        """
        real = self.is_real
        reconnect = REAL_RECONNECT_OBJECTIVE if real else 5.0
        return {
            "STREAMSPACE_HEARTBEAT_INTERVAL": self.heartbeat_interval,
            "STREAMSPACE_OFFLINE_THRESHOLD": 2 * self.heartbeat_interval,
            "STREAMSPACE_RECONNECT_OBJECTIVE": reconnect,
            "STREAMSPACE_DRAIN_OBJECTIVE": reconnect + (30.0 if real else 10.0),
            "STREAMSPACE_PARTITION_DURATION": 120.0 if real else 20.0,
            "STREAMSPACE_POLL_INTERVAL": 1.0 if real else 0.1,
        }


# The seed target of StreamSpace's integration test 3.1 (reconnect < 30 s).
REAL_RECONNECT_OBJECTIVE = 30.0

REAL = Timers(
    heartbeat_interval=30.0,
    stale_threshold=45.0,
    sweep_interval=10.0,
    selector_window=90.0,
    reconnect_backoff=(2.0, 4.0, 8.0, 16.0, 32.0),
    approval_retry=30.0,
    reconciler_interval=60.0,
    reconciler_stuck=300.0,
    reconciler_force=600.0,
    ws_ping_interval=54.0,
    ws_read_deadline=60.0,
    start_timeout=120.0,
)

FAST = Timers(
    heartbeat_interval=2.0,
    stale_threshold=3.0,
    sweep_interval=0.25,
    selector_window=6.0,
    reconnect_backoff=(0.5, 1.0, 2.0, 4.0, 8.0),
    approval_retry=2.0,
    reconciler_interval=2.0,
    reconciler_stuck=10.0,
    reconciler_force=20.0,
    ws_ping_interval=3.6,
    ws_read_deadline=4.0,
    start_timeout=20.0,
)

TIMER_SETS: Dict[str, Timers] = {"fast": FAST, "real": REAL}


def timer_set(name: str) -> Timers:
    try:
        return TIMER_SETS[name]
    except KeyError:
        raise ValueError(f"unknown timer set {name!r}: use one of {', '.join(TIMER_SETS)}") from None


def backoff_list(timers: Timers) -> List[float]:
    return list(timers.reconnect_backoff)
