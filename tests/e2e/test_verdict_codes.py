"""The verdict codes the scheduled path gates on, measured on real journals from the sandbox (with the
`no-heartbeat-sweep` defect switched on): a detection failure is a finding (1), a run without credentials
is a setup error (6), a dry run is no evidence (7), a partition that could not be injected is 3."""

import pytest
from helpers import EXPERIMENTS, ROOT
from helpers.chaos import chaos, run_args

from chaosstream.journal.verdict import judge_file

pytestmark = pytest.mark.slow

HEARTBEAT = EXPERIMENTS / "agent-heartbeat.json"


def test_verdict_codes_on_real_sandbox_journals(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(faults=("no-heartbeat-sweep",))
    cases = {
        "finding": ([], {}, 1, "offline-detection-time"),
        "no-credentials": ([], {"STREAMSPACE_USERNAME": "", "STREAMSPACE_PASSWORD": ""}, 6, "configuration"),
        "dry": (["--dry=actions"], {}, 7, "dry run"),
        "not-injected": (
            [],
            {"STREAMSPACE_AGENT_SELECTOR": "app=nothing"},
            3,
            "partition-the-agent-from-the-api",
        ),
    }
    measured = {}
    for name, (args, extra, _, _) in cases.items():
        journal = tmp_path / f"{name}.json"
        env = sandbox.environ(**extra)
        for key, value in extra.items():
            if value == "":
                env.pop(key)
        chaos(*run_args(HEARTBEAT, journal, args), env=env, cwd=ROOT, timeout=300)
        _, verdict = judge_file(str(journal))
        measured[name] = (verdict.code, verdict.lines()[-1])
    for name, (_, _, code, needle) in cases.items():
        got, line = measured[name]
        assert got == code and needle in line, f"{name}: expected {code}, got {got}: {line}"
