"""Fixtures for the sandbox control plane: one embedded PostgreSQL per test session, a fresh database
(cloned from a template) and a control plane in a background thread per test, and fake agents speaking
the real WebSocket protocol.

Mark a test ``@pytest.mark.controlplane(faults=[...], migrations=False, **config_overrides)`` to change
the control plane it gets.
"""

import dataclasses
import itertools
import json
import queue
import secrets
import threading
from typing import Any, Dict, Iterator, List, Optional

import httpx
import psycopg
import pytest
import websocket
from helpers.waits import wait_for
from psycopg.rows import dict_row

from chaosstream.sandbox.controlplane import ControlPlaneConfig, ControlPlaneThread
from chaosstream.sandbox.postgres import EmbeddedPostgres, apply_schema
from chaosstream.sandbox.timers import FAST

ADMIN_PASSWORD = "admin-sandbox-password"
USER1_PASSWORD = "user1"
BOOTSTRAP_KEY = secrets.token_hex(32)
JWT_SECRET = "x" * 40

# Compressed even further than FAST so the suite stays fast; same relations between the timers.
TEST_TIMERS = dataclasses.replace(
    FAST,
    heartbeat_interval=0.25,
    stale_threshold=1.0,
    sweep_interval=0.2,
    selector_window=3.0,
    reconciler_interval=0.3,
    reconciler_stuck=1.0,
    reconciler_force=2.0,
    ws_ping_interval=0.5,
    ws_read_deadline=1.5,
)
_db_counter = itertools.count()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "controlplane(faults=[], migrations=True, **overrides): control-plane setup"
    )


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """One PostgreSQL for the whole run, with two template databases (with / without migrations)."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    server.start()
    try:
        apply_schema(server.dsn, with_migrations=True, user1_password=USER1_PASSWORD)
        apply_schema(
            server.create_database("streamspace_nomig"), with_migrations=False, user1_password=USER1_PASSWORD
        )
        yield server
    finally:
        server.stop()


def fresh_db(pg: EmbeddedPostgres, migrations: bool = True) -> str:
    template = "streamspace" if migrations else "streamspace_nomig"
    return pg.create_database(f"test_{next(_db_counter)}", template=template)


class SQL:
    """Tiny synchronous DB helper for assertions."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def all(self, query: str, params: Any = None) -> List[Dict[str, Any]]:
        with psycopg.connect(self.dsn, row_factory=dict_row, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def one(self, query: str, params: Any = None) -> Optional[Dict[str, Any]]:
        rows = self.all(query, params)
        return rows[0] if rows else None

    def run(self, query: str, params: Any = None) -> None:
        self.all(query, params)


class FakeAgent:
    """An agent speaking the real protocol over a raw WebSocket (websocket-client)."""

    def __init__(
        self, cp: "Sandbox", agent_id: str, heartbeat: Optional[float] = None, key: Optional[str] = None
    ):
        self.cp = cp
        self.agent_id = agent_id
        self.heartbeat_interval = TEST_TIMERS.heartbeat_interval if heartbeat is None else heartbeat
        self.key = key or BOOTSTRAP_KEY
        self.frames: queue.Queue[str] = queue.Queue()
        self.ws: Optional[websocket.WebSocket] = None
        self.heartbeats_on = threading.Event()
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []

    def connect(self, heartbeats: bool = True) -> "FakeAgent":
        url = f"{self.cp.ws_url}/api/v1/agents/connect?agent_id={self.agent_id}"
        self.ws = websocket.create_connection(url, header=[f"X-Agent-API-Key: {self.key}"], timeout=5)
        self._stop.clear()
        if heartbeats:
            self.heartbeats_on.set()
        for target in (self._read_loop, self._heartbeat_loop):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _read_loop(self) -> None:
        ws = self.ws
        assert ws is not None
        while not self._stop.is_set():
            try:
                ws.settimeout(0.2)
                data = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:  # noqa: BLE001 - socket gone
                break
            if data == "" and not ws.connected:
                break
            if data:
                self.frames.put(data)
        self._stop.set()

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            if self.heartbeats_on.is_set():
                try:
                    self.send(
                        "heartbeat",
                        {"status": "online", "activeSessions": 0, "capacity": {"maxSessions": 10}},
                    )
                except Exception:  # noqa: BLE001 - socket gone
                    return

    @property
    def closed_by_server(self) -> bool:
        return self._stop.is_set()

    def send(self, kind: str, payload: Dict[str, Any]) -> None:
        assert self.ws is not None
        self.ws.send(json.dumps({"type": kind, "timestamp": "2025-01-01T00:00:00Z", "payload": payload}))

    def next_frame(self, timeout: float = 5.0) -> str:
        return self.frames.get(timeout=timeout)

    def next_command(self, timeout: float = 5.0) -> Dict[str, Any]:
        message = json.loads(self.next_frame(timeout))
        assert message["type"] == "command", message
        return message["payload"]

    def no_frame(self, wait: float = 0.5) -> bool:
        try:
            self.frames.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def complete(self, command: Dict[str, Any], result: Optional[Dict[str, Any]] = None) -> None:
        self.send("ack", {"commandId": command["commandId"]})
        self.send("complete", {"commandId": command["commandId"], "result": result or {}})

    def close(self) -> None:
        """Graceful close (close frame)."""
        self._stop.set()
        if self.ws is not None:
            try:
                self.ws.send_close()
            except Exception:  # noqa: BLE001 - already gone
                pass
            for thread in self._threads:
                thread.join(2)
            self.ws.shutdown()
        self._threads.clear()

    def drop(self) -> None:
        """Abrupt loss of the TCP connection (no close frame)."""
        self._stop.set()
        if self.ws is not None:
            self.ws.abort()
            for thread in self._threads:
                thread.join(2)
            self.ws.shutdown()
        self._threads.clear()


@dataclasses.dataclass
class Sandbox:
    """Handles of one test's control plane."""

    thread: ControlPlaneThread
    config: ControlPlaneConfig
    sql: SQL
    http: httpx.Client
    admin_token: str
    agents: List[FakeAgent] = dataclasses.field(default_factory=list)
    # reachable from tests without importing conftest
    command_id_of = staticmethod(lambda response: command_id_of(response))
    agent_id_of = staticmethod(lambda response: agent_id_of(response))

    @property
    def url(self) -> str:
        return self.thread.url

    @property
    def ws_url(self) -> str:
        return self.thread.ws_url

    def login(self, username: str, password: str) -> httpx.Response:
        return self.http.post("/api/v1/auth/login", json={"username": username, "password": password})

    def token_for(self, username: str, password: str) -> str:
        response = self.login(username, password)
        assert response.status_code == 200, response.text
        return response.json()["token"]

    @property
    def admin(self) -> Dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def register(self, agent_id: str, key: Optional[str] = None, **extra: Any) -> httpx.Response:
        body = {"agentId": agent_id, "platform": "kubernetes", "region": "local", **extra}
        return self.http.post(
            "/api/v1/agents/register", json=body, headers={"X-Agent-API-Key": key or BOOTSTRAP_KEY}
        )

    def agent(self, agent_id: str, register: bool = True, connect: bool = True, **kwargs: Any) -> FakeAgent:
        """Register (bootstrap key) and connect a fake agent; wait until the DB shows it online."""
        if register:
            assert self.register(agent_id).status_code in (200, 202)
        fake = FakeAgent(self, agent_id, **kwargs)
        self.agents.append(fake)
        if connect:
            fake.connect()
            wait_for(lambda: self.agent_status(agent_id) == "online")
            wait_for(lambda: self.sql.one("SELECT 1 FROM agents WHERE agent_id=%s AND last_heartbeat IS NOT NULL",
                                          (agent_id,)))  # fmt: skip
        return fake

    def agent_status(self, agent_id: str) -> Optional[str]:
        row = self.sql.one("SELECT status FROM agents WHERE agent_id = %s", (agent_id,))
        return row["status"] if row else None

    def create_session(self, user: str = "admin", **body: Any) -> httpx.Response:
        return self.http.post(
            "/api/v1/sessions", json={"user": user, "template": "firefox-browser", **body}, headers=self.admin
        )

    def command(self, command_id: str) -> Dict[str, Any]:
        row = self.sql.one("SELECT * FROM agent_commands WHERE command_id = %s", (command_id,))
        assert row is not None
        return row

    def session(self, session_id: str) -> Dict[str, Any]:
        row = self.sql.one("SELECT * FROM sessions WHERE id = %s", (session_id,))
        assert row is not None
        return row


def command_id_of(create_response: httpx.Response) -> str:
    """The command id from a 202's ``status.message`` (the API returns no agent/command field)."""
    message = create_response.json()["status"]["message"]
    return message.rsplit("command: ", 1)[1].rstrip(")")


def agent_id_of(create_response: httpx.Response) -> str:
    message = create_response.json()["status"]["message"]
    return message.split("agent: ", 1)[1].split(",", 1)[0]


@pytest.fixture
def cp(pg: EmbeddedPostgres, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A running control plane on a fresh database; configure it with ``@pytest.mark.controlplane``."""
    marker = request.node.get_closest_marker("controlplane")
    options = dict(marker.kwargs) if marker else {}
    faults = frozenset(options.pop("faults", ()))
    dsn = fresh_db(pg, migrations=options.pop("migrations", True))
    config = ControlPlaneConfig(
        dsn=dsn,
        admin_password=ADMIN_PASSWORD,
        jwt_secret=JWT_SECRET,
        bootstrap_key=BOOTSTRAP_KEY,
        timers=options.pop("timers", TEST_TIMERS),
        faults=faults,
        **options,
    )
    thread = ControlPlaneThread(config).start()
    http = httpx.Client(base_url=thread.url, timeout=10)
    sandbox = Sandbox(thread=thread, config=config, sql=SQL(dsn), http=http, admin_token="")
    try:
        sandbox.admin_token = sandbox.token_for("admin", ADMIN_PASSWORD)
        yield sandbox
    finally:
        for fake in sandbox.agents:
            fake.drop()
        http.close()
        thread.stop()


@pytest.fixture
def user1_headers(cp: Sandbox) -> Dict[str, str]:
    return {"Authorization": f"Bearer {cp.token_for('user1', USER1_PASSWORD)}"}
