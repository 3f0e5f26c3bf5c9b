"""The sensitivity matrix (issue 6): every experiment passes on the baseline — three times on the same
sandbox, to expose flakiness and non-idempotent clean-up — and deviates or fails under every fault it
targets, with the verdict naming the probe that caught it. The README's table must be the one this run
produced."""

import re

import pytest
from helpers import ROOT

from chaosstream.sandbox.faults import FAULTS
from chaosstream.sandbox.matrix import EXPERIMENTS, TARGETS, markdown_table, run_cell

README = ROOT / "README.md"
RESULTS = []
MUTANTS = [(experiment, fault) for experiment, faults in TARGETS.items() for fault in faults]


def test_every_fault_is_targeted_by_an_experiment():
    targeted = {fault for faults in TARGETS.values() for fault in faults}
    assert targeted == set(FAULTS)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", list(EXPERIMENTS))
def test_baseline_passes_three_times(experiment, tmp_path):
    results = run_cell(experiment, (), repeats=3, workdir=tmp_path, experiments_dir=ROOT / "experiments")
    for index, result in enumerate(results):
        assert result.chaos_exit == 0, f"run {index}: chaos run exited {result.chaos_exit}; see {tmp_path}"
        assert result.verdict == 0, f"run {index}: verdict {result.label} from {result.deciding}"
        assert result.recovery_s > 0, "the experiment recorded no measured duration"
    RESULTS.append(results[0])


@pytest.mark.slow
@pytest.mark.parametrize("experiment, fault", MUTANTS, ids=[f"{e[:-5]}-x-{f}" for e, f in MUTANTS])
def test_fault_is_caught(experiment, fault, tmp_path):
    (result,) = run_cell(experiment, (fault,), workdir=tmp_path, experiments_dir=ROOT / "experiments")
    assert result.caught, f"{experiment} passed although the sandbox had {fault}"
    assert result.deciding, "the verdict does not say which probe caught the fault"
    RESULTS.append(result)


@pytest.mark.slow
def test_readme_table_is_this_runs_matrix():
    if len(RESULTS) != len(EXPERIMENTS) + len(MUTANTS):
        pytest.skip("some matrix cells did not run (see their failures)")
    table = markdown_table(RESULTS)
    match = re.search(r"<!-- matrix:start -->\n(.*?)\n<!-- matrix:end -->", README.read_text(), re.S)
    assert match, "README.md lacks the matrix markers"

    # Which probe fires first may vary with timing; caught/passes may not.
    def outcome(text):
        return re.sub(r"caught \([^)]*\)", "caught", text).strip()

    assert outcome(match.group(1)) == outcome(table), (
        "README's matrix is stale: run python bench/matrix.py --update-readme"
    )
