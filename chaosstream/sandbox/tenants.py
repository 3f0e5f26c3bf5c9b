"""Background tenants: what a busy real install holds besides the experiment (as-built §1, contract §3.6).

Other users' sessions on other ("neighbour") agents of another cluster, `agent_commands` rows stuck in
`sent` / `ack` / `failed` (a real install never prunes nor re-sends them), and a slow trickle of new
commands and sessions while the experiment runs. Written straight into PostgreSQL, as the neighbour
cluster's API replicas would: the neighbour agents have no process here, so their heartbeats are kept
fresh by the same task. On in both profiles; `--no-tenants` switches them off.

The neighbours have their own id prefix and region, and more sessions each than an experiment creates,
so StreamSpace's least-loaded selector keeps the experiment's sessions on the experiment's agents.
"""

import dataclasses
import datetime as dt
import itertools
import secrets
from typing import List

import psycopg

__all__ = ["Tenants", "NEIGHBOUR_PREFIX", "TENANT_USERS"]

NEIGHBOUR_PREFIX = "k8s-neighbour-cluster"
NEIGHBOUR_REGION = "neighbour"
TENANT_USERS = ("tenant-alice", "tenant-bob", "tenant-carol")
ACTIONS = ("start_session", "stop_session", "hibernate_session", "wake_session")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclasses.dataclass
class Tenants:
    dsn: str
    agents: int = 2
    sessions_per_agent: int = 25  # above what any experiment puts on one of its agents
    stuck_commands: int = 60
    # as the profile: does a completed command move the session (intended) or not (as built)?
    complete_updates_sessions: bool = True
    _seeded_at: dt.datetime = dataclasses.field(default_factory=_now)
    _tick: "itertools.count[int]" = dataclasses.field(default_factory=itertools.count)
    _open: List[str] = dataclasses.field(default_factory=list)

    @property
    def agent_ids(self) -> List[str]:
        return [f"{NEIGHBOUR_PREFIX}-{i}" for i in range(1, self.agents + 1)]

    def seed(self) -> None:
        """Users, neighbour agents, their sessions and a history of stuck commands (hours old)."""
        old = _now() - dt.timedelta(hours=6)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for user in TENANT_USERS:
                conn.execute(
                    "INSERT INTO users (id, username, email, role, provider, active, org_id, created_at, updated_at)"
                    " VALUES (%s, %s, %s, 'user', 'local', true, 'default-org', %s, %s) ON CONFLICT DO NOTHING",
                    (user, user, f"{user}@tenants.example", old, old),
                )
            for agent_id in self.agent_ids:
                conn.execute(
                    "INSERT INTO agents (agent_id, platform, region, status, org_id, approval_status, approved_at,"
                    " approved_by, last_heartbeat, created_at, updated_at) VALUES (%s, 'kubernetes', %s, 'online',"
                    " 'default-org', 'approved', %s, 'admin', %s, %s, %s) ON CONFLICT (agent_id) DO NOTHING",
                    (agent_id, NEIGHBOUR_REGION, old, _now(), old, old),
                )
            n = 0
            for agent_id in self.agent_ids:
                for _ in range(self.sessions_per_agent):
                    user = TENANT_USERS[n % len(TENANT_USERS)]
                    self._session(conn, user, agent_id, old + dt.timedelta(seconds=n))
                    n += 1
            for i in range(self.stuck_commands):
                status = ("sent", "ack", "failed")[i % 3]
                agent_id = self.agent_ids[i % len(self.agent_ids)]
                self._command(conn, agent_id, status, old + dt.timedelta(seconds=i))
        self._seeded_at = _now()

    def tick(self) -> None:
        """Keep the neighbours online; one new command (completed at the next tick, one in ten left
        `failed`); a new session and a stopped one every 20 ticks."""
        tick = next(self._tick)
        now = _now()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                "UPDATE agents SET status = 'online', last_heartbeat = %s, updated_at = %s WHERE agent_id = ANY(%s)",
                (now, now, self.agent_ids),
            )
            if self._open:
                conn.execute(
                    "UPDATE agent_commands SET status = 'completed', completed_at = %s WHERE command_id = ANY(%s)",
                    (now, self._open),
                )
                self._open.clear()
            self._serve(conn, now)
            agent_id = self.agent_ids[tick % len(self.agent_ids)]
            if tick % 10 == 9:
                self._command(conn, agent_id, "failed", now)
            else:
                self._open.append(self._command(conn, agent_id, "sent", now))
            if tick % 20 == 19:
                user = TENANT_USERS[tick % len(TENANT_USERS)]
                self._session(conn, user, agent_id, now)
                conn.execute(
                    "UPDATE sessions SET state = 'terminated', updated_at = %s WHERE id = (SELECT id FROM sessions"
                    " WHERE agent_id = %s AND state = 'running' ORDER BY created_at LIMIT 1)",
                    (now, agent_id),
                )

    def _serve(self, conn: psycopg.Connection, now: dt.datetime) -> None:
        """The neighbour cluster's agents do their work: commands the API sent them since the seed (e.g. a
        session the selector placed there while the experiment's agents were away) complete; a start (or
        wake) is followed by the agent's `running` status message, as the k8s agent does."""
        rows = conn.execute(
            "UPDATE agent_commands SET status = 'completed', acknowledged_at = %s, completed_at = %s"
            " WHERE agent_id = ANY(%s) AND status IN ('pending', 'sent', 'ack') AND created_at > %s"
            " AND NOT (command_id = ANY(%s)) RETURNING action, session_id",
            (now, now, self.agent_ids, self._seeded_at, self._open),
        ).fetchall()
        for action, session_id in rows:
            if not session_id:
                continue
            state = {"start_session": "running", "wake_session": "running"}.get(action)
            if state is None and self.complete_updates_sessions:
                state = {"stop_session": "terminated", "hibernate_session": "hibernated"}.get(action)
            if state:
                conn.execute(
                    "UPDATE sessions SET state = %s, updated_at = %s WHERE id = %s", (state, now, session_id)
                )

    @staticmethod
    def _session(conn: psycopg.Connection, user: str, agent_id: str, when: dt.datetime) -> str:
        sid = f"{user}-firefox-browser-{secrets.token_hex(4)}"
        conn.execute(
            "INSERT INTO sessions (id, user_id, template_name, state, app_type, namespace, platform, agent_id,"
            " memory, cpu, persistent_home, org_id, created_at, updated_at) VALUES (%s, %s, 'firefox-browser',"
            " 'running', 'desktop', 'streamspace-neighbour', 'kubernetes', %s, '2Gi', '1000m', false,"
            " 'default-org', %s, %s)",
            (sid, user, agent_id, when, when),
        )
        return sid

    @staticmethod
    def _command(conn: psycopg.Connection, agent_id: str, status: str, when: dt.datetime) -> str:
        row = conn.execute(
            "SELECT id FROM sessions WHERE agent_id = %s ORDER BY random() LIMIT 1", (agent_id,)
        ).fetchone()
        command_id = f"cmd-{secrets.token_hex(4)}"
        conn.execute(
            "INSERT INTO agent_commands (command_id, agent_id, session_id, action, status, error_message,"
            " created_at, sent_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                command_id, agent_id, row[0] if row else None, ACTIONS[int(when.timestamp()) % len(ACTIONS)],
                status, "agent is not connected" if status == "failed" else None, when, when,
            ),
        )  # fmt: skip
        return command_id
