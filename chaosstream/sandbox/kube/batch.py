"""Jobs and CronJobs, as the job and cronjob controllers run them (the parts scheduled chaos needs).

* Job: one pod at a time from `spec.template` (ownerReference, `job-name` labels); a pod that fails is
  replaced while `status.failed <= backoffLimit`; `activeDeadlineSeconds` deletes the running pod
  (graceful: SIGTERM, then the grace period) and fails the Job with reason DeadlineExceeded; status
  `active` / `succeeded` / `failed`, `startTime`, `completionTime` and a Complete/Failed condition.
* CronJob: on its `schedule` (five cron fields: `*`, numbers, ranges, lists, `*/n`; `timeZone` ignored,
  the sandbox runs in UTC) a Job `<name>-<minutes since epoch>` is created, unless `suspend` is set or,
  with `concurrencyPolicy: Forbid`, a Job of it is still active. `trigger(emu, ns, name)` creates one now
  (what `kubectl create job --from=cronjob/NAME` does). Finished Jobs beyond the history limits go.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from typing import TYPE_CHECKING, Any

from .resources import BY_KEY, POD
from .store import clone
from .workloads import owner_ref

if TYPE_CHECKING:
    from .cluster import Cluster

Obj = dict[str, Any]
JOB = BY_KEY["batch/jobs"]
CRONJOB = BY_KEY["batch/cronjobs"]
log = logging.getLogger(__name__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


# ---- cron ----------------------------------------------------------------------------------------
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def _field(spec: str, low: int, high: int) -> set[int]:
    out: set[int] = set()
    for part in spec.split(","):
        step = 1
        if "/" in part:
            part, raw = part.split("/", 1)
            step = int(raw)
        if part in ("*", ""):
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = int(a), int(b)
        else:
            start = end = int(part)
            if step != 1:
                end = high
        out.update(range(start, end + 1, step))
    return out


def cron_matches(schedule: str, t: dt.datetime) -> bool:
    """Whether the five-field `schedule` fires in the minute of `t` (Sunday is 0 and 7)."""
    fields = schedule.split()
    if len(fields) != 5:
        raise ValueError(f"unsupported schedule {schedule!r}: five fields expected")
    minute, hour, dom, month, dow = (_field(f, *r) for f, r in zip(fields, _RANGES, strict=True))
    if 7 in _field(fields[4], 0, 7):
        dow.add(0)
    weekday = (t.weekday() + 1) % 7
    if fields[2] != "*" and fields[4] != "*":  # cron: either day field may match
        day_ok = t.day in dom or weekday in dow
    else:
        day_ok = t.day in dom and weekday in dow
    return t.minute in minute and t.hour in hour and t.month in month and day_ok


# ---- Job -----------------------------------------------------------------------------------------
def _finished(job: Obj) -> str | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def reconcile_job(emu: Cluster, namespace: str, name: str) -> None:
    store = emu.store
    job = store.get(JOB, namespace, name)
    if job is None or job["metadata"].get("deletionTimestamp") or _finished(job):
        return
    spec = job.get("spec") or {}
    pods = store.owned_by(job["metadata"]["uid"], POD)
    succeeded = sum(1 for p in pods if _phase(p) == "Succeeded")
    failed = sum(1 for p in pods if _phase(p) == "Failed")
    active = [
        p
        for p in pods
        if _phase(p) not in ("Succeeded", "Failed") and not p["metadata"].get("deletionTimestamp")
    ]
    status = clone(job.get("status") or {})
    now = _now()
    start = _parse(status.get("startTime"))
    if start is None:
        start = now
        status["startTime"] = _iso(now)
        deadline = spec.get("activeDeadlineSeconds")
        if deadline:
            emu.controllers.enqueue_after(float(deadline) + 0.5, "job", namespace, name)
    condition = None
    deadline = spec.get("activeDeadlineSeconds")
    if succeeded >= int(spec.get("completions", 1) or 1):
        condition = ("Complete", "", "")
    elif failed > int(spec.get("backoffLimit", 6)):
        condition = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    elif deadline and (now - start).total_seconds() >= float(deadline):
        condition = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
        for pod in active:
            emu.delete(POD, namespace, pod["metadata"]["name"])
        active = []
    elif not active:
        template = spec.get("template") or {}
        meta = clone(template.get("metadata") or {})
        labels = dict(meta.get("labels") or {})
        labels.update({"job-name": name, "batch.kubernetes.io/job-name": name})
        meta.update(
            name=f"{name}-{secrets.token_hex(3)[:5]}",
            generateName=f"{name}-",
            labels=labels,
            ownerReferences=[owner_ref(job)],
            namespace=namespace,
        )
        pod = emu.create_object(
            {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": clone(template.get("spec") or {})}
        )
        emu.record_event(job, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
        active = [pod]
    status["active"] = len(active)
    status["succeeded"] = succeeded
    status["failed"] = failed
    if condition is not None:
        ctype, reason, message = condition
        cond: Obj = {
            "type": ctype,
            "status": "True",
            "lastProbeTime": _iso(now),
            "lastTransitionTime": _iso(now),
        }
        if reason:
            cond.update(reason=reason, message=message)
        status["conditions"] = [*(status.get("conditions") or []), cond]
        if ctype == "Complete":
            status["completionTime"] = _iso(now)
        status["active"] = 0
        emu.record_event(job, "Completed" if ctype == "Complete" else reason, message or "Job completed")
    status = {k: v for k, v in status.items() if v or k == "startTime"}
    if status != (job.get("status") or {}):
        store.update(JOB, namespace, name, dict(job, status=status), "status")
    owner = next(
        (r for r in job["metadata"].get("ownerReferences") or [] if r.get("kind") == "CronJob"), None
    )
    if condition is not None and owner is not None:
        emu.controllers.enqueue("cronjob", namespace, owner["name"])


# ---- CronJob -------------------------------------------------------------------------------------
def _jobs_of(emu: Cluster, cron: Obj) -> list[Obj]:
    return emu.store.owned_by(cron["metadata"]["uid"], JOB)


def create_job_from(emu: Cluster, cron: Obj, name: str, manual: bool) -> Obj:
    template = cron["spec"].get("jobTemplate") or {}
    meta = clone(template.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    if manual:
        annotations["cronjob.kubernetes.io/instantiate"] = "manual"
    meta.update(
        name=name,
        namespace=cron["metadata"]["namespace"],
        annotations=annotations,
        ownerReferences=[owner_ref(cron)],
    )
    job = emu.create_object(
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": clone(template.get("spec") or {})}
    )
    emu.record_event(cron, "SuccessfulCreate", f"Created job {name}")
    return job


def reconcile_cronjob(emu: Cluster, namespace: str, name: str, tick: bool = False) -> None:
    cron = emu.store.get(CRONJOB, namespace, name)
    if cron is None or cron["metadata"].get("deletionTimestamp"):
        return
    spec = cron.get("spec") or {}
    jobs = _jobs_of(emu, cron)
    active = [j for j in jobs if not _finished(j)]
    status = clone(cron.get("status") or {})
    now = _now().replace(second=0, microsecond=0)
    if tick and not spec.get("suspend"):
        last = _parse(status.get("lastScheduleTime"))
        try:
            created = _parse(cron["metadata"].get("creationTimestamp"))
            due = (
                cron_matches(str(spec.get("schedule", "")), now)
                and (last is None or last < now)
                and (
                    created is None or created <= now
                )  # a schedule time before the CronJob existed is not due
            )
        except ValueError as exc:
            log.warning("CronJob %s/%s: %s", namespace, name, exc)
            due = False
        if due:
            status["lastScheduleTime"] = _iso(now)
            if active and spec.get("concurrencyPolicy") == "Forbid":
                emu.record_event(cron, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")  # fmt: skip
            else:
                minutes = int(now.timestamp() // 60)
                if emu.store.get(JOB, namespace, f"{name}-{minutes}") is None:
                    active.append(create_job_from(emu, cron, f"{name}-{minutes}", manual=False))
    # history limits
    for kind, limit in (("Complete", spec.get("successfulJobsHistoryLimit", 3)), ("Failed", spec.get("failedJobsHistoryLimit", 1))):  # fmt: skip
        done = sorted(
            (j for j in jobs if _finished(j) == kind), key=lambda j: j["metadata"]["creationTimestamp"]
        )
        for job in done[: max(0, len(done) - int(limit))]:
            emu.delete(JOB, namespace, job["metadata"]["name"])
    status["active"] = [
        {"apiVersion": "batch/v1", "kind": "Job", "name": j["metadata"]["name"], "namespace": namespace, "uid": j["metadata"]["uid"]}
        for j in active
    ]  # fmt: skip
    if not status["active"]:
        status.pop("active")
    if status != (cron.get("status") or {}):
        emu.store.update(CRONJOB, namespace, name, dict(cron, status=status), "status")


def tick(emu: Cluster) -> None:
    """Once a second: every CronJob whose schedule fires this minute gets its Job."""
    for entry in list(emu.store.iter(CRONJOB)):
        meta = entry.obj["metadata"]
        reconcile_cronjob(emu, meta["namespace"], meta["name"], tick=True)
