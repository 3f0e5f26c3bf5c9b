"""Fixtures for the activity catalog tests (see tests/helpers/harness.py)."""

import pytest
from helpers.harness import Harness


@pytest.fixture(scope="module")
def harness(shared_sandbox) -> Harness:
    return Harness(shared_sandbox)


@pytest.fixture(autouse=True)
def fresh_run_memory():
    """Each test is its own run: forget the agents an earlier test's faults hit."""
    from chaosstream.selection import forget_agents

    forget_agents()
    yield
    forget_agents()
