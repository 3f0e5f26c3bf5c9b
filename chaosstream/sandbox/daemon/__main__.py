"""``python -m chaosstream.sandbox.daemon STATE_DIR OPTIONS_JSON``: run the sandbox daemon (see ``server``)."""

from chaosstream.sandbox.daemon.server import main

if __name__ == "__main__":
    main()
