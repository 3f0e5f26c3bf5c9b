"""Fixtures for the activity catalog tests (see tests/helpers/harness.py)."""

import pytest
from helpers.harness import Harness


@pytest.fixture(scope="module")
def harness(shared_sandbox) -> Harness:
    return Harness(shared_sandbox)
