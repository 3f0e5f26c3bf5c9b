"""The sandbox daemon: one background process per state dir that runs the whole sandbox stack.

* ``client``: start, stop, find and ask the daemon (used by the CLI, the tests and the benchmarks);
* ``server``: the daemon process itself, ``python -m chaosstream.sandbox.daemon STATE_DIR OPTIONS_JSON``.
"""
