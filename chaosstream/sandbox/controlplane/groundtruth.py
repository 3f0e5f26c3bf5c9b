"""Ground truth for benchmarks: agent connectivity transitions in ``sandbox_agent_events`` (not StreamSpace).

The hub records every connect and disconnect here; ``sandboxapi`` serves the table over HTTP.
"""

import logging
from typing import Optional

from chaosstream.sandbox.controlplane.db import Database, utcnow

log = logging.getLogger(__name__)


async def record(db: Database, agent_id: str, status: str, reason: str, connection_id: Optional[str]) -> None:
    """Append one transition; never lets a DB hiccup break the caller (the hub)."""
    try:
        await db.execute(
            "INSERT INTO sandbox_agent_events (agent_id, status, reason, connection_id, at)"
            " VALUES (%s, %s, %s, %s, %s)",
            (agent_id, status, reason, connection_id, utcnow()),
        )
    except Exception:  # noqa: BLE001 - ground truth is best effort, the hub must go on
        log.exception("could not record sandbox event %s %s", agent_id, status)
