"""Kill a process group when the process that started it goes away.

Run as `python -I watchdog.py PGID GRACE`, with stdin a pipe whose write end only
the starting process holds: EOF on stdin means that process has exited (even by
SIGKILL), so the group is stopped with SIGTERM, then SIGKILL after GRACE seconds.
Standard library only, so it starts fast and never imports the host.
"""

import os
import signal
import sys
import time


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main() -> None:
    pgid, grace = int(sys.argv[1]), float(sys.argv[2])
    # A Ctrl-C or hang-up aimed at the host must not take the watchdog down first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while sys.stdin.buffer.read(4096):
        pass
    if not _alive(pgid):
        return
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pgid):
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    main()
