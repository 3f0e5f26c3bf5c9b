"""Watch: selectors, resourceVersion replay, timeoutSeconds, ADDED/MODIFIED/DELETED."""

from __future__ import annotations

import threading
import time

from helpers.kube import pod_manifest
from kubernetes import client, watch


def test_watch_with_selector_and_timeout(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "pre", "labels": {"w": "yes"}}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "other", "labels": {"w": "no"}}})
    seen: list[tuple[str, str, str]] = []

    def mutate() -> None:
        time.sleep(0.2)
        core.create_namespaced_config_map("default", {"metadata": {"name": "new", "labels": {"w": "yes"}}})
        core.patch_namespaced_config_map("new", "default", {"data": {"k": "v"}})
        core.patch_namespaced_config_map("other", "default", {"data": {"k": "v"}})  # filtered out
        core.delete_namespaced_config_map("new", "default")

    t = threading.Thread(target=mutate)
    t.start()
    start = time.monotonic()
    for ev in watch.Watch().stream(
        core.list_namespaced_config_map, "default", label_selector="w=yes", timeout_seconds=1
    ):
        seen.append((ev["type"], ev["object"].metadata.name, ev["object"].metadata.resource_version))
    elapsed = time.monotonic() - start
    t.join()
    assert [(e[0], e[1]) for e in seen] == [
        ("ADDED", "pre"),
        ("ADDED", "new"),
        ("MODIFIED", "new"),
        ("DELETED", "new"),
    ]
    rvs = [int(e[2]) for e in seen[1:]]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3
    assert 0.9 <= elapsed < 2.5  # ended by timeoutSeconds


def test_watch_from_resource_version_replays(core: client.CoreV1Api) -> None:
    listed = core.list_namespaced_pod("default")
    rv = listed.metadata.resource_version
    core.create_namespaced_pod("default", pod_manifest("w1"))
    events = []
    for ev in watch.Watch().stream(
        core.list_namespaced_pod,
        "default",
        resource_version=rv,
        timeout_seconds=1,
        field_selector="metadata.name=w1",
    ):
        events.append((ev["type"], ev["object"].status.phase))
        if ev["object"].status.phase == "Running":
            break
    assert events[0] == ("ADDED", "Pending")
    assert ("MODIFIED", "Running") in events


def test_watch_selector_leave_reads_as_deleted(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "m", "labels": {"w": "yes"}}})
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.patch_namespaced_config_map("m", "default", {"metadata": {"labels": {"w": "no"}}})
    types = [
        ev["type"]
        for ev in watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            label_selector="w=yes",
            resource_version=rv,
            timeout_seconds=1,
        )
    ]
    assert types == ["DELETED"]
