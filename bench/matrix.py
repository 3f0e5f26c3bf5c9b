"""Run the sensitivity matrix and print the wall time of each cell and the total.

    python bench/matrix.py [--jobs N] [--update-readme]

Each cell starts its own sandbox (fast timers). The overhead column is the `chaos run` wall time minus
the recovery the system itself needed (the sum of the wait-probes' measured `elapsed_s`).
"""

import argparse
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaosstream.sandbox.matrix import EXPERIMENTS, TARGETS, markdown_table, run_cell  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1, help="cells run at once (each has its own sandbox)")
    parser.add_argument("--update-readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    cells = [(e, ()) for e in EXPERIMENTS] + [(e, (f,)) for e, fs in TARGETS.items() for f in fs]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        outcomes = list(
            pool.map(lambda cell: run_cell(cell[0], cell[1], experiments_dir=ROOT / "experiments")[0], cells)
        )
    total = time.monotonic() - started
    print(
        f"{'experiment':<28} {'fault':<34} {'verdict':<22} {'wall s':>7} {'run s':>7} {'recov s':>8} {'overhead s':>10}"
    )
    for r in outcomes:
        print(
            f"{r.experiment:<28} {r.fault or 'baseline':<34} {r.label:<22} {r.wall_s:>7.1f} {r.run_s:>7.1f} "
            f"{r.recovery_s:>8.2f} {r.run_s - r.recovery_s:>10.2f}"
        )
    print(f"total wall time: {total:.1f}s for {len(cells)} cells with {args.jobs} job(s)")
    bad = [r for r in outcomes if (r.fault is None) == r.caught]
    for r in bad:
        print(f"UNEXPECTED: {r.experiment} {r.fault or 'baseline'} -> {r.label} {r.deciding}")
    table = markdown_table(outcomes)
    print(table)
    if args.update_readme and not bad:
        readme = ROOT / "README.md"
        text = readme.read_text()
        text = re.sub(
            r"<!-- matrix:start -->.*?<!-- matrix:end -->",
            lambda _: f"<!-- matrix:start -->\n{table}\n<!-- matrix:end -->",
            text,
            flags=re.S,
        )
        readme.write_text(text)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
