"""The README's "what these experiments report against StreamSpace v2 as built" table is this code's: every
experiment runs on its own `--profile as-built` sandbox (in parallel, as `bench/asbuilt.py` does), no run is a
tool failure or an unexplained deviation, and README shows the same verdicts and findings."""

import importlib.util

import pytest
from helpers import ROOT

pytestmark = pytest.mark.slow


def _bench():
    spec = importlib.util.spec_from_file_location("bench_asbuilt", ROOT / "bench" / "asbuilt.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_asbuilt_table_is_fresh():
    bench = _bench()
    table, unexplained = bench.run_table(jobs=6)
    assert not unexplained, f"as-built runs the table cannot explain: {unexplained}\n{table}"
    assert bench.outcome(bench.readme_table()) == bench.outcome(table), (
        "README's as-built table is stale: run python bench/asbuilt.py --update-readme\n" + table
    )
