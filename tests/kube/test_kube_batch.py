"""Jobs and CronJobs in the emulator: cron matching, a CronJob's Job on schedule, a Job's pod."""

import datetime as dt

import pytest
from helpers.kube import emulator
from helpers.waits import wait_for

from chaosstream.sandbox.kube.batch import cron_matches


@pytest.mark.parametrize(
    "schedule,when,fires",
    [
        ("* * * * *", "2026-12-01T15:44", True),
        ("17 3 * * 1-5", "2026-12-01T03:17", True),  # a Tuesday
        ("17 3 * * 1-5", "2026-12-05T03:17", False),  # a Saturday
        ("*/15 * * * *", "2026-12-01T15:45", True),
        ("*/15 * * * *", "2026-12-01T15:44", False),
        ("0 0 1 * 0", "2026-12-06T00:00", True),  # day-of-month OR day-of-week (a Sunday)
    ],
)
def test_cron_matches(schedule, when, fires):
    assert cron_matches(schedule, dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC)) is fires


def test_a_cronjob_every_minute_gets_a_job_and_the_job_a_pod(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    with emulator(kubeconfig, "streamspace") as emu:
        emu.create_object(
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {"name": "reaper", "namespace": "streamspace"},
                "spec": {
                    "schedule": "* * * * *",
                    "concurrencyPolicy": "Forbid",
                    "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {
                        "restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}},
                },
            }
        )  # fmt: skip

        def job():
            jobs = emu.list_objects("batch/v1", "Job", "streamspace")
            return jobs[0] if jobs else None

        created = wait_for(job, 65, "the CronJob's Job")
        assert created["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
        pods = wait_for(lambda: emu.list_objects("v1", "Pod", "streamspace"), 10, "the Job's pod")
        assert pods[0]["metadata"]["labels"]["job-name"] == created["metadata"]["name"]
        cron = emu.get_object("batch/v1", "CronJob", "streamspace", "reaper")
        assert (
            cron["status"]["lastScheduleTime"]
            and cron["status"]["active"][0]["name"] == created["metadata"]["name"]
        )
