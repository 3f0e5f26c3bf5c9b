"""The sandbox-only endpoints ``/sandbox/v1/*`` (not StreamSpace): ground truth and active faults.

``list_events`` serves the connectivity transitions that the hub records through ``groundtruth``.
"""

import datetime as dt

from aiohttp import web

from chaosstream.sandbox.controlplane.db import rfc3339
from chaosstream.sandbox.controlplane.state import CP, json_error
from chaosstream.sandbox.faults import FAULTS


async def list_events(request: web.Request) -> web.Response:
    """``GET /sandbox/v1/events[?agent_id=&since=<RFC3339>]`` → ``{events:[{agentId,status,reason,at}],total}``."""
    cp = request.app[CP]
    query = "SELECT * FROM sandbox_agent_events WHERE 1=1"
    params: list = []
    if request.query.get("agent_id"):
        query += " AND agent_id = %s"
        params.append(request.query["agent_id"])
    if request.query.get("since"):
        try:
            since = dt.datetime.fromisoformat(request.query["since"].replace("Z", "+00:00"))
        except ValueError:
            return json_error(400, "Invalid request", details="since must be an RFC3339 timestamp")
        if since.tzinfo is not None:
            since = since.astimezone(dt.UTC).replace(tzinfo=None)
        query += " AND at >= %s"
        params.append(since)
    rows = await cp.db.fetch(query + " ORDER BY at, id", params)
    events = [
        {
            "agentId": r["agent_id"],
            "status": r["status"],
            "reason": r["reason"] or "",
            "connectionId": r["connection_id"] or "",
            "at": rfc3339(r["at"]),
        }
        for r in rows
    ]
    return web.json_response({"events": events, "total": len(events)})


async def list_faults(request: web.Request) -> web.Response:
    """``GET /sandbox/v1/faults`` → the faults switched on in this instance, with their descriptions."""
    cp = request.app[CP]
    active = sorted(cp.config.faults)
    return web.json_response({"faults": active, "descriptions": {name: FAULTS[name] for name in active}})
