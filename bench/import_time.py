"""Import cost of the extension: `import chaosstream`, `chaosstream.probes`, `chaosstream.actions` and
`chaos discover --no-install chaostoolkit-streamspace` wall times (median of 5), plus the top
`-X importtime` entries of `import chaosstream.actions`.

    python bench/import_time.py
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List

RUNS = 5


def _wall(cmd: List[str], cwd: str) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=cwd)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    py = sys.executable
    tmp = tempfile.mkdtemp(prefix="css-bench-import-")
    baseline = _wall([py, "-c", "pass"], tmp)
    print(f"python -c pass                          {baseline * 1000:7.0f} ms (interpreter start-up)")
    for module in ("chaosstream", "chaosstream.probes", "chaosstream.actions", "chaoslib"):
        t = _wall([py, "-c", f"import {module}"], tmp)
        print(f"python -c 'import {module:<20s}' {t * 1000:7.0f} ms  (+{(t - baseline) * 1000:.0f} ms)")
    discover = [py, "-m", "chaostoolkit", "--no-version-check", "--no-log-file", "discover", "--no-install",
                "--discovery-path", os.path.join(tmp, "discovery.json"), "chaostoolkit-streamspace"]  # fmt: skip
    print(f"chaos discover --no-install             {_wall(discover, tmp) * 1000:7.0f} ms")
    proc = subprocess.run([py, "-X", "importtime", "-c", "import chaosstream.actions"],
                          capture_output=True, text=True, cwd=tmp)  # fmt: skip
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative, name = line.split(":", 1)[1].split("|", 2)
        rows.append((int(cumulative), int(self_us), name.rstrip()))
    print("top cumulative imports of `import chaosstream.actions` (-X importtime, ms):")
    for cumulative, self_us, name in sorted(rows, reverse=True)[:12]:
        print(f"  {cumulative / 1000:7.1f}  self {self_us / 1000:6.1f}  {name}")
    ours = [r for r in rows if r[2].strip().startswith("chaosstream")]
    print(
        "heaviest chaosstream modules (self time, ms): "
        + ", ".join(f"{n.strip()} {s / 1000:.1f}" for _, s, n in sorted(ours, key=lambda r: -r[1])[:5])
    )


if __name__ == "__main__":
    main()
