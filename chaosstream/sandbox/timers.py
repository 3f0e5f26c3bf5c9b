"""Timer sets of the sandbox: StreamSpace's real values and a compressed set for fast runs.

The real values are StreamSpace's own (docs/streamspace.md#34-timers). The fast set is the real set
divided by one factor (`FAST_FACTOR`), objectives included, so every ratio is the real one and a timing
bug shows at fast speed too.
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
    # Agent HA (ENABLE_HA, agents/k8s-agent/internal/leaderelection/leader_election.go): lease 15 s,
    # renew deadline 10 s, retry 2 s.
    lease_duration: float = 15.0
    lease_renew_deadline: float = 10.0
    lease_retry: float = 2.0
    # The agent's registration request and WebSocket handshake limits (http.Client{Timeout: 10s},
    # websocket.Dialer{HandshakeTimeout: 10s}): scaled with the rest, or a registration sent into a
    # partition just before its heal outlasts the scaled reconnect objective by itself. (The 10 s write
    # wait stays: scaled to 1 s it drops sound connections of a busy sandbox.)
    agent_io_timeout: float = 10.0
    # VNC (api/internal/handlers/vnc_proxy.go:48-49; agents/k8s-agent/agent_vnc_handler.go:163,
    # agent_vnc_tunnel.go:135): the proxy's pong wait towards the UI (it pings every ws_ping_interval,
    # 54 s), the agent's sleep before opening a session's tunnel, the port-forward ready timeout.
    vnc_pong_wait: float = 120.0
    vnc_tunnel_delay: float = 2.0
    vnc_ready_timeout: float = 30.0

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
        """Objectives the experiments check, exported in the env file — scaled with the timers.

        Offline detection: StreamSpace's heartbeat test allows 2 missed heartbeats. Reconnect: the seed
        target of integration test 3.1 (30 s). Drain: reconnect plus the 30 s test 3.2 waits. Partition:
        long enough for offline detection and recovery. Every objective is the real one divided by the same
        factor as the timers (`self.factor`), so every ratio (heartbeat : stale : objective) is the real one.
        The poll interval is a measurement resolution, not a StreamSpace timer: it is not scaled.
        """
        factor = self.factor
        return {
            "STREAMSPACE_HEARTBEAT_INTERVAL": self.heartbeat_interval,
            "STREAMSPACE_OFFLINE_THRESHOLD": 2 * self.heartbeat_interval,
            "STREAMSPACE_RECONNECT_OBJECTIVE": REAL_RECONNECT_OBJECTIVE / factor,
            "STREAMSPACE_DRAIN_OBJECTIVE": (REAL_RECONNECT_OBJECTIVE + 30.0) / factor,
            "STREAMSPACE_PARTITION_DURATION": REAL_PARTITION_DURATION / factor,
            # a session must run within the agent's own start timeout (120 s real)
            "STREAMSPACE_START_OBJECTIVE": REAL.start_timeout / factor,
            "STREAMSPACE_POLL_INTERVAL": 1.0 if self.is_real else 0.1,
            # StreamSpace's E2E plan: VNC within 10 s of running, reconnect < 5 s, a 5-minute session
            "STREAMSPACE_VNC_READY_OBJECTIVE": REAL_VNC_READY_OBJECTIVE / factor,
            # scaled like the rest: the sandbox agent opens a tunnel in milliseconds as the Go agent does
            # (agent/kubeapi.py), so the reconnect is bounded by StreamSpace's timers and the viewer's retry
            "STREAMSPACE_VNC_RECONNECT_OBJECTIVE": REAL_VNC_RECONNECT_OBJECTIVE / factor,
            "STREAMSPACE_STREAM_SOAK": REAL_STREAM_SOAK / factor,
        }

    @property
    def factor(self) -> float:
        """How many times faster than StreamSpace's own timers this set runs (1 for the real set)."""
        return REAL.heartbeat_interval / self.heartbeat_interval

    def scaled(self, factor: float) -> "Timers":
        """This set with every timer divided by `factor`."""
        values = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, tuple):
                values[field.name] = tuple(round(v / factor, 6) for v in value)
            else:
                values[field.name] = round(value / factor, 6)
        return Timers(**values)


# The seed target of StreamSpace's integration test 3.1 (reconnect < 30 s).
REAL_RECONNECT_OBJECTIVE = 30.0
# StreamSpace's E2E test plan (seed 1.1, 1.2): VNC reachable within 10 s of `running`, reconnects in < 5 s,
# no drop during a 5-minute session.
REAL_VNC_READY_OBJECTIVE = 10.0
REAL_VNC_RECONNECT_OBJECTIVE = 5.0
REAL_STREAM_SOAK = 300.0
# How long a partition lasts with real timers: several heartbeats, past the 45 s stale threshold.
REAL_PARTITION_DURATION = 120.0
# `--timers fast` = StreamSpace's real timers divided by this one factor (objectives included).
FAST_FACTOR = 10.0

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
    lease_duration=15.0,
    lease_renew_deadline=10.0,
    lease_retry=2.0,
)

FAST = REAL.scaled(FAST_FACTOR)

TIMER_SETS: Dict[str, Timers] = {"fast": FAST, "real": REAL}


def timer_set(name: str) -> Timers:
    try:
        return TIMER_SETS[name]
    except KeyError:
        raise ValueError(f"unknown timer set {name!r}: use one of {', '.join(TIMER_SETS)}") from None


def backoff_list(timers: Timers) -> List[float]:
    return list(timers.reconnect_backoff)
