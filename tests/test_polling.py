"""Wait loops say what they see while they wait (INFO, at most every `every` seconds)."""

import logging
import time

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosstream.polling import PROGRESS_EVERY, agents_progress, mapping_progress, wait_until


def test_a_long_wait_logs_its_progress_at_info_with_elapsed_and_timeout(caplog):
    started = time.monotonic()

    def check():
        elapsed = time.monotonic() - started
        return elapsed > 0.55, {"agents": [{"agentId": "a-1", "status": "offline"}]}

    with caplog.at_level(logging.INFO, logger="chaostoolkit"):
        wait_until(check, 5, 0.02, lambda last: "timeout", agents_progress("a-1", "online"), every=0.2)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("waiting:")]
    assert 2 <= len(lines) <= 3, lines
    assert "agent a-1 to be online; seen: a-1 offline" in lines[0]
    assert lines[0].endswith("of 5s)")
    assert PROGRESS_EVERY == 10.0


def test_a_quick_wait_is_quiet_and_a_broken_describer_never_breaks_the_wait(caplog):
    with caplog.at_level(logging.INFO, logger="chaostoolkit"):
        wait_until(lambda: (True, 1), 5, 0.01, lambda last: "t", mapping_progress("sessions", "running"))
    assert not [r for r in caplog.records if r.getMessage().startswith("waiting:")]

    def broken(last):
        raise KeyError("x")

    with caplog.at_level(logging.INFO, logger="chaostoolkit"):
        with pytest.raises(ActivityFailed, match="gave up"):
            wait_until(lambda: (False, None), 0.3, 0.02, lambda last: "gave up", broken, every=0.1)
    assert any("progress unavailable" in r.getMessage() for r in caplog.records)


def test_mapping_progress_names_what_is_not_there_yet():
    describe = mapping_progress("sessions", "running")
    assert describe({"s1": "running", "s2": "pending"}) == "sessions to be running; not yet: s2 pending"
