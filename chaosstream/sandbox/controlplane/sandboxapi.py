"""The sandbox-only endpoints ``/sandbox/v1/*`` (not StreamSpace): ground truth and active faults.

``list_events`` serves the connectivity transitions that the hub records through ``groundtruth``.
"""

import datetime as dt
from typing import Any, List, Tuple, Union

from aiohttp import web

from chaosstream.sandbox.controlplane.db import rfc3339
from chaosstream.sandbox.controlplane.state import CP, json_error
from chaosstream.sandbox.faults import FAULTS


def ground_truth_filter(
    request: web.Request, key: str, since_clause: str
) -> Union[Tuple[str, List[Any]], web.Response]:
    """The WHERE clause and parameters of a ground-truth listing: `?<key>=` matches that column, `?since=`
    (RFC3339) fills `since_clause`; a 400 answer when `since` is not a timestamp."""
    clause, params = " WHERE 1=1", []  # type: Tuple[str, List[Any]]
    if request.query.get(key):
        clause += f" AND {key} = %s"
        params.append(request.query[key])
    if request.query.get("since"):
        try:
            since = dt.datetime.fromisoformat(request.query["since"].replace("Z", "+00:00"))
        except ValueError:
            return json_error(400, "Invalid request", details="since must be an RFC3339 timestamp")
        if since.tzinfo is not None:
            since = since.astimezone(dt.UTC).replace(tzinfo=None)
        clause += f" AND {since_clause}"
        params.append(since)
    return clause, params


async def list_events(request: web.Request) -> web.Response:
    """``GET /sandbox/v1/events[?agent_id=&since=<RFC3339>]`` → ``{events:[{agentId,status,reason,at}],total}``."""
    cp = request.app[CP]
    where = ground_truth_filter(request, "agent_id", "at >= %s")
    if isinstance(where, web.Response):
        return where
    query, params = "SELECT * FROM sandbox_agent_events" + where[0], where[1]
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
