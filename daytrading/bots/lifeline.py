"""Children that die with the supervisor, even when it is killed with SIGKILL.

* **POSIX**: the supervisor puts every child (sim-gateway included) into one process
  group of their own (so Ctrl+C in the console reaches only the supervisor, which then
  stops them in order, and ``kill -- -PGID`` reaches them all). A child started with
  ``$DAYTRADING_SUPERVISOR_PID`` calls :func:`follow_parent` first thing: on Linux the
  kernel sends it SIGTERM when the supervisor dies (``prctl(PR_SET_PDEATHSIG)``); on every
  POSIX system a daemon thread also checks ``os.getppid()`` once a second, sends SIGTERM
  to its own process when the parent is gone, and ends it with ``os._exit`` if it is
  still alive :data:`GRACE` seconds later. SIGTERM lets a bot stop cleanly (positions
  and working orders stay at the broker, as with ``daytrading stop``).
* **Windows**: the supervisor assigns each child to a job object created with
  ``JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`` (:class:`KillOnCloseJob`); when the supervisor
  dies, Windows closes its handle to the job and kills every process in it. (A child
  runs for a few milliseconds before it is assigned; it starts no process of its own
  in that time.)

Everything imports cleanly on both systems; the OS-specific calls happen only when used.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

log = logging.getLogger("daytrading.lifeline")

#: Environment variable naming the supervisor's pid for its children.
ENV = "DAYTRADING_SUPERVISOR_PID"
#: Wall seconds between SIGTERM and ``os._exit`` once the parent is gone.
GRACE = 15.0
#: Wall seconds between two parent checks of the watcher thread.
POLL = 1.0
PR_SET_PDEATHSIG = 1
IS_WINDOWS = os.name == "nt"


def follow_parent(environ: dict[str, str] | None = None) -> int | None:
    """In a supervised child: arrange to die with the supervisor. Returns its pid, or None.

    Reads (and removes, so grandchildren do not inherit it) ``$DAYTRADING_SUPERVISOR_PID``.
    Does nothing without it, or on Windows (the job object does the work there).
    """
    env = os.environ if environ is None else environ
    raw = env.pop(ENV, None)
    if not raw or IS_WINDOWS:
        return None
    try:
        parent = int(raw)
    except ValueError:
        log.warning("ignoring a malformed supervisor pid", extra={"variable": ENV, "value": raw})
        return None
    if sys.platform.startswith("linux"):
        _pdeathsig(signal.SIGTERM)
    threading.Thread(target=_watch_parent, args=(parent,), name="lifeline", daemon=True).start()
    return parent


def _pdeathsig(sig: int) -> None:
    """Linux: the kernel sends ``sig`` to this process when its parent dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed", extra={"errno": ctypes.get_errno()})
    except (OSError, AttributeError) as exc:  # pragma: no cover - no libc prctl: the watcher thread remains
        log.warning("prctl unavailable", extra={"error": str(exc)})


def _watch_parent(parent: int) -> None:
    """Daemon thread: when ``parent`` is no longer our parent, SIGTERM ourselves, then exit hard."""
    while os.getppid() == parent:
        time.sleep(POLL)
    log.critical("the supervisor is gone; stopping", extra={"supervisor_pid": parent})
    with contextlib.suppress(OSError):
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE)
    os._exit(1)


# ---------------------------------------------------------------------- supervisor side, POSIX


class ProcessGroup:
    """The one process group of the supervisor's children (POSIX).

    :meth:`popen_kwargs` gives ``subprocess.Popen`` the group to join: a new one for
    the first child (and again if every member has died), the existing one afterwards.
    """

    def __init__(self) -> None:
        self.pgid: int | None = None

    def popen_kwargs(self) -> dict[str, Any]:
        """``process_group=`` for the next child."""
        if self.pgid is not None and not self._alive():
            self.pgid = None
        return {"process_group": self.pgid or 0}

    def joined(self, pid: int) -> None:
        """Record the group after a successful spawn (the first child leads it)."""
        if self.pgid is None:
            self.pgid = pid

    def _alive(self) -> bool:
        try:
            os.killpg(self.pgid, 0)  # type: ignore[arg-type]
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover - exists, not ours: do not join it
            return False
        return True

    def kill(self, sig: int | None = None) -> None:
        """Send ``sig`` (default SIGKILL) to whatever is left in the group (after the orderly shutdown)."""
        if self.pgid is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.pgid, sig if sig is not None else signal.SIGKILL)


# ---------------------------------------------------------------------- supervisor side, Windows


JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000
JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS = 9


class _BasicLimits(ctypes.Structure):
    _fields_ = [("PerProcessUserTimeLimit", ctypes.c_int64), ("PerJobUserTimeLimit", ctypes.c_int64),
                ("LimitFlags", ctypes.c_uint32), ("MinimumWorkingSetSize", ctypes.c_size_t),
                ("MaximumWorkingSetSize", ctypes.c_size_t), ("ActiveProcessLimit", ctypes.c_uint32),
                ("Affinity", ctypes.c_size_t), ("PriorityClass", ctypes.c_uint32),
                ("SchedulingClass", ctypes.c_uint32)]


class _IoCounters(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("ReadOperationCount", "WriteOperationCount",
                                                      "OtherOperationCount", "ReadTransferCount",
                                                      "WriteTransferCount", "OtherTransferCount")]


class JobLimits(ctypes.Structure):
    """``JOBOBJECT_EXTENDED_LIMIT_INFORMATION`` (winnt.h)."""

    _fields_ = [("BasicLimitInformation", _BasicLimits), ("IoInfo", _IoCounters),
                ("ProcessMemoryLimit", ctypes.c_size_t), ("JobMemoryLimit", ctypes.c_size_t),
                ("PeakProcessMemoryUsed", ctypes.c_size_t), ("PeakJobMemoryUsed", ctypes.c_size_t)]


class KillOnCloseJob:
    """A Windows job object whose processes are killed when its last handle closes
    (i.e. when the supervisor exits or is killed). Create and use only on Windows.

    Raises:
        OSError: a Win32 call failed (the message names it and the error code).
    """

    def __init__(self) -> None:
        self._k32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        self._k32.CreateJobObjectW.restype = ctypes.c_void_p
        self._k32.SetInformationJobObject.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                                      ctypes.c_uint32]
        self._k32.AssignProcessToJobObject.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.handle = self._k32.CreateJobObjectW(None, None)
        if not self.handle:
            raise self._error("CreateJobObjectW")
        limits = JobLimits()
        limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        if not self._k32.SetInformationJobObject(self.handle, JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS,
                                                 ctypes.byref(limits), ctypes.sizeof(limits)):
            raise self._error("SetInformationJobObject")

    def assign(self, proc: Any) -> None:
        """Put a started ``subprocess.Popen`` into the job."""
        if not self._k32.AssignProcessToJobObject(self.handle, int(proc._handle)):
            raise self._error("AssignProcessToJobObject")

    def _error(self, call: str) -> OSError:
        code = ctypes.get_last_error()  # type: ignore[attr-defined]
        return OSError(code, f"{call} failed (Windows error {code})")
