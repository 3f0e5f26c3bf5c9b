"""Run a container's command in its own PID and mount namespaces, as a container runtime does:
`python -m chaosstream.sandbox.pidinit -- ARGV...`.

The process the runtime starts stays in the host PID namespace and forwards SIGTERM/SIGINT inward; its
child is PID 1 of a new PID namespace (an init, as `tini` or a pod's shared-process-namespace `pause`
is) with /proc remounted, and runs ARGV as PID 2. Exec and ephemeral containers enter these namespaces
(`nsenter -t <init> -p -m -n`), so `kill` and `/proc` inside them see the container's processes only:
a fault script can never signal a process of the host. The init dies with its parent (PDEATHSIG), and
the kernel then kills everything in the namespace.
"""

import ctypes
import os
import signal
import subprocess
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
PR_SET_PDEATHSIG = 1
MS_REC, MS_PRIVATE = 0x4000, 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _status(code: int) -> int:
    return 128 + os.WTERMSIG(code) if os.WIFSIGNALED(code) else os.WEXITSTATUS(code)


def _forward_and_wait(child: int) -> int:
    def forward(sig: int, _frame: object) -> None:
        try:
            os.kill(child, sig)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    while True:
        try:
            pid, code = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if pid == child:
            return _status(code)


def _init(argv: list) -> int:
    """PID 1 of the new namespace: private mounts, a fresh /proc, then run ARGV as PID 2 and reap."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    _check(_libc.mount(b"proc", b"/proc", b"proc", 0, None), "mount proc")
    proc = subprocess.Popen(argv)
    return _forward_and_wait(proc.pid)


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m chaosstream.sandbox.pidinit -- ARGV...", file=sys.stderr)
        return 2
    _check(_libc.unshare(CLONE_NEWPID | CLONE_NEWNS), "unshare")
    child = os.fork()
    if child == 0:
        try:
            os._exit(_init(argv))
        except BaseException as exc:  # never fall back into the parent's code path
            print(f"pidinit: {exc}", file=sys.stderr)
            os._exit(127)
    return _forward_and_wait(child)


if __name__ == "__main__":
    sys.exit(main())
