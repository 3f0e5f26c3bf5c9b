"""Fast timers are StreamSpace's real timers divided by one factor, objectives included."""

import dataclasses

import pytest

from chaosstream.sandbox.timers import FAST, FAST_FACTOR, REAL, timer_set


def test_every_fast_timer_is_the_real_one_divided_by_the_factor():
    assert FAST.factor == pytest.approx(FAST_FACTOR)
    for field in dataclasses.fields(REAL):
        real, fast = getattr(REAL, field.name), getattr(FAST, field.name)
        if isinstance(real, tuple):
            assert len(real) == len(fast), field.name
            for r, f in zip(real, fast, strict=True):
                assert r / f == pytest.approx(FAST_FACTOR), field.name
        else:
            assert real / fast == pytest.approx(FAST_FACTOR), field.name


def test_every_objective_scales_with_the_timers_except_the_poll_resolution():
    real, fast = REAL.objectives(), FAST.objectives()
    assert set(real) == set(fast)
    for name in real:
        if name == "STREAMSPACE_POLL_INTERVAL":
            continue  # a measurement resolution, not a StreamSpace timer
        assert real[name] / fast[name] == pytest.approx(FAST_FACTOR), name
    # the ratio the flagship experiment depends on: one heartbeat against the reconnect objective
    assert fast["STREAMSPACE_RECONNECT_OBJECTIVE"] / FAST.heartbeat_interval == pytest.approx(
        real["STREAMSPACE_RECONNECT_OBJECTIVE"] / REAL.heartbeat_interval
    )


def test_real_timers_are_streamspaces_own():
    assert timer_set("real") is REAL
    assert (REAL.heartbeat_interval, REAL.stale_threshold, REAL.selector_window) == (30.0, 45.0, 90.0)
    assert REAL.objectives()["STREAMSPACE_RECONNECT_OBJECTIVE"] == 30.0
    assert FAST.objectives()["STREAMSPACE_RECONNECT_OBJECTIVE"] == pytest.approx(3.0)
