"""Journal tooling: read a Chaos Toolkit journal defensively and turn it into a verdict, JUnit XML, a
report, and a history across runs.

* `chaosstream.journal.schema` - extension names and safe accessors for journal shapes
* `chaosstream.journal.verdict` - `evaluate()`, the verdict codes and `chaosstream verdict`
* `chaosstream.journal.junit` - JUnit XML (standard library only)
* `chaosstream.journal.scrub` - credential scrubbing
* `chaosstream.journal.report` - `chaosstream report` (HTML/Markdown with an SVG timeline)
* `chaosstream.journal.history` - `chaosstream history` (runs over time, OpenMetrics, Grafana annotations)
"""
