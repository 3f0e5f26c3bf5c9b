"""Agent placement (``api/internal/services/agent_selector.go``).

Baseline: approved agents with ``status='online'`` and ``last_heartbeat`` within ``timers.selector_window``
on the configured platform; fewest sessions in ``running/hibernated/pending`` wins, ties go to the most
recent heartbeat. Fault ``place-on-stale-agents``: status, freshness and approval are ignored (only
rejected agents are skipped), so sessions land on agents that are gone. Profile ``as-built``: approval is
ignored (a pending, unconnected agent that re-registered reads online and gets sessions).
"""

import datetime as dt
from typing import Optional

from chaosstream.sandbox.controlplane.config import ControlPlaneConfig
from chaosstream.sandbox.controlplane.db import Database, utcnow

_LOAD = """
SELECT a.agent_id
FROM agents a
LEFT JOIN (
    SELECT agent_id, count(*) AS n FROM sessions
    WHERE state IN ('running', 'hibernated', 'pending') AND agent_id IS NOT NULL
    GROUP BY agent_id
) s ON s.agent_id = a.agent_id
WHERE a.platform = %(platform)s AND {filters}
ORDER BY COALESCE(s.n, 0) ASC, a.last_heartbeat DESC NULLS LAST, a.created_at ASC
LIMIT 1
"""


async def select_agent(db: Database, config: ControlPlaneConfig) -> Optional[str]:
    """The agent_id a new session goes to, or None (→ 503 ``No agents available``)."""
    if config.fault("place-on-stale-agents"):
        filters = "COALESCE(a.approval_status, 'approved') <> 'rejected'"
    elif config.profile.selector_ignores_approval:
        # as built: only status and freshness count (api/internal/services/agent_selector.go:163-173)
        filters = "a.status = 'online' AND a.last_heartbeat > %(cutoff)s"
    else:
        filters = "a.status = 'online' AND a.last_heartbeat > %(cutoff)s AND a.approval_status = 'approved'"
    cutoff = utcnow() - dt.timedelta(seconds=config.timers.selector_window)
    row = await db.fetchrow(_LOAD.format(filters=filters), {"platform": config.platform, "cutoff": cutoff})
    return row["agent_id"] if row else None
