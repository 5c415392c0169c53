"""A cell process never outlives the `recbench` process that started it.

`kill -9` of the parent (or its death any other way) leaves nothing to tell the child, so the child watches:
- on Linux the kernel sends it SIGKILL the moment its parent exits (prctl PR_SET_PDEATHSIG);
- everywhere, a daemon thread checks every POLL_S seconds that its parent is still the one that started it
  (a dead parent's children are re-parented, so os.getppid() changes) and ends the process if not.
The thread covers platforms without prctl and a parent that died before prctl ran; the kernel signal covers
a child stuck in C code that holds the GIL.

SIGTERM to the parent (what `timeout` and CI cancellation send) is turned into an exception there
(`terminate_on_signals`), so the runner's clean-up stops the running cell and leaves valid results files.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable

POLL_S = 0.2
#: exit status of a cell that ended itself because its parent was gone
ORPHAN_EXIT = 3


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived. A KeyboardInterrupt, so every clean-up that handles Ctrl-C handles it too."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def die_with_parent(parent_pid: int) -> None:
    """Call first thing in a child process: from now on it ends within POLL_S of `parent_pid`'s death."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog thread below still ends the process
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(ORPHAN_EXIT)

    def watch() -> None:
        while True:
            time.sleep(POLL_S)
            if os.getppid() != parent_pid:
                os._exit(ORPHAN_EXIT)  # no clean-up: nobody is left to read what this process would write

    threading.Thread(target=watch, name="recbench-parent-watchdog", daemon=True).start()


def terminate_on_signals() -> Callable[[], None]:
    """In the parent: SIGTERM and SIGHUP raise Terminated in the main thread, like Ctrl-C raises KeyboardInterrupt.

    Returns a function that puts the previous handlers back. Off the main thread (where Python cannot set
    handlers) nothing changes.
    """

    def raise_terminated(signum, _frame) -> None:
        raise Terminated(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                sig = getattr(signal, name)
                previous[sig] = signal.signal(sig, raise_terminated)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
