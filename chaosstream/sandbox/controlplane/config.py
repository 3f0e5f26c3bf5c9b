"""Configuration of the sandbox control plane."""

import dataclasses
import re
from typing import FrozenSet

from chaosstream.sandbox.faults import validate_faults
from chaosstream.sandbox.profile import INTENDED, Profile
from chaosstream.sandbox.timers import FAST, Timers

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclasses.dataclass(frozen=True)
class ControlPlaneConfig:
    """Everything :func:`create_app` needs; mirrors the real API's environment variables.

    ``auto_approve`` / ``preapproved_agents`` are sandbox conveniences: the real feature branch puts every
    new agent in ``pending`` approval. ``preapproved_agents`` always wins; ``auto_approve`` is ignored
    while the ``agent-id-per-pod`` fault is on or the profile requires approval (``as-built``), so new ids
    land ``pending`` as on a real install. ``profile`` (see chaosstream/sandbox/profile.py) is what the
    handlers consult for intended-vs-as-built behaviour.
    """

    dsn: str
    admin_password: str
    jwt_secret: str
    bootstrap_key: str
    timers: Timers = FAST
    faults: FrozenSet[str] = frozenset()
    profile: Profile = INTENDED
    admin_username: str = "admin"
    namespace: str = "streamspace"
    platform: str = "kubernetes"
    auto_approve: bool = True
    preapproved_agents: FrozenSet[str] = frozenset()
    version: str = "v0.1.0"
    db_pool_size: int = 10
    replica: str = ""  # the API pod's name (POD_NAME), when it runs as a pod of the API Deployment

    def __post_init__(self) -> None:
        object.__setattr__(self, "faults", validate_faults(self.faults))
        object.__setattr__(self, "preapproved_agents", frozenset(self.preapproved_agents))
        if not _HEX64.match(self.bootstrap_key):
            raise ValueError("bootstrap_key must be exactly 64 hex characters (AGENT_BOOTSTRAP_KEY)")
        if len(self.jwt_secret) < 32:
            raise ValueError("jwt_secret must be at least 32 characters (JWT_SECRET)")

    def fault(self, name: str) -> bool:
        return name in self.faults
