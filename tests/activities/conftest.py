"""Fixtures for the activity catalog tests (see `_harness.py`)."""

import pytest
from _harness import Harness


@pytest.fixture(scope="module")
def harness(shared_sandbox) -> Harness:
    return Harness(shared_sandbox)
