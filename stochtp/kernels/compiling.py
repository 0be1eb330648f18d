"""Where the compiled kernels are kept, and how long this process spent compiling them.

Every kernel is compiled with `cache=True`: the first process that calls a kernel with given
argument types compiles it (seconds), stores the machine code, and every later process loads it
(milliseconds). Numba stores it in the first of these places that it can write to:

    $NUMBA_CACHE_DIR                    when set
    stochtp/kernels/__pycache__         next to the sources (a user's or a virtual environment's install)
    <user cache>/numba                  ~/.cache/numba on Linux ($XDG_CACHE_HOME), for a read-only install
    <temp>/stochtp-numba-cache-<user>   where neither can be written (`ensure_cache_location`)

so an install that cannot be written compiles once per user, not once per process. Numba has
no last place of its own (it refuses to define a cached kernel); `ensure_cache_location`, run
as `stochtp.kernels` is imported, before any kernel is defined, sets it as Numba's cache folder.

`compilations()` measures what a block compiled; cache loads are not compilations, so a warm
cache reports nothing. The `stochtp` command prints one line from it.

A child process may compile kernels ahead of their first call (`ahead`): `expect` names the
kernels it will put into the cache, and `wait_for`, called before a kernel runs
(`sampling.run_tasks`), waits for the child's report that it did, so that this process loads
the kernel instead of compiling it a second time. The wait counts as compilation time.
"""
import getpass
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numba
import numba.core.event as numba_event
from numba.misc.appdirs import AppDirs

_SOURCE_CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")


def ensure_cache_location():
    """Point Numba's cache at a temporary folder of this user's when neither the sources' folder
    nor the user cache folder can be written (and NUMBA_CACHE_DIR is not set); returns the
    folder set, or None where Numba's own choice stands."""
    if numba.config.CACHE_DIR or _writable(_SOURCE_CACHE) or _writable(AppDirs(appname="numba", appauthor=False).user_cache_dir):
        return None
    folder = os.path.join(tempfile.gettempdir(), f"stochtp-numba-cache-{getpass.getuser()}")
    numba.config.CACHE_DIR = folder
    return folder


def _writable(folder):
    """Whether a file can be created in `folder` (made if missing): Numba's own test."""
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


@dataclass
class Compilations:
    """What a `compilations()` block compiled: `kernels` (kernels compiled for new argument
    types; what they call in turn is part of them), `ahead` (kernels a child process compiled
    for it, `ahead`) and `seconds` (wall-clock time spent compiling them or waiting for them)."""

    kernels: int = 0
    ahead: int = 0
    seconds: float = 0.0

    def __str__(self):
        alongside = f", {self.ahead} more in a second process alongside" if self.ahead else ""
        return f"compiled {self.kernels} Numba kernel{'s' if self.kernels != 1 else ''}{alongside} in {self.seconds:.1f} s (cached for next runs)"


class _Listener(numba_event.Listener):
    """Adds each outermost compilation to a `Compilations` (Numba compiles under one lock, so
    one depth counter serves every thread)."""

    def __init__(self, record, on_first=None):
        self.record, self.depth, self.started, self.on_first = record, 0, 0.0, on_first

    def on_start(self, event):
        self.depth += 1
        if self.depth == 1:
            if self.on_first is not None and self.record.kernels == 0:
                self.on_first()
            self.started = time.perf_counter()

    def on_end(self, event):
        self.depth -= 1
        if self.depth == 0:
            self.record.kernels += 1
            self.record.seconds += time.perf_counter() - self.started


@contextmanager
def compilations(on_first=None):
    """Measure the kernels compiled inside the block (nothing when the cache had them):

        with stochtp.kernels.compilations() as compiled:
            stochtp.fit(net, method, train=(X, y))
        print(compiled.kernels, compiled.seconds)

    `on_first()`, where given, is called as the block's first compilation starts (a notice that
    the wait has a reason)."""
    record = Compilations()
    listener = _Listener(record, on_first)
    numba_event.register("numba:compile", listener)
    _RECORDS.append(record)
    try:
        yield record
    finally:
        _RECORDS.remove(record)
        numba_event.unregister("numba:compile", listener)


_RECORDS = []  # the Compilations of the open compilations() blocks
_LOCK = threading.Lock()
_EXPECTED = {}  # kernel -> the name under which the child compiling it reports it
_CHILD = {}  # process: the child; pid: the process that started it; reported: the names it printed


def expect(process, kernels):
    """`process` (a child with text stdout) compiles `kernels` ({kernel: name}) and prints each
    name, one a line, once the kernel is in the cache."""
    with _LOCK:
        _CHILD.update(process=process, pid=os.getpid(), reported=set())
        _EXPECTED.clear()
        _EXPECTED.update(kernels)


def expecting():
    """Whether a child of this process is compiling kernels ahead."""
    return _CHILD.get("pid") == os.getpid() and _CHILD["process"].poll() is None


def wait_for(kernel):
    """Before `kernel` runs: where a child of this process compiles it ahead and has not yet
    reported it, wait for its report (or its end, whatever the reason)."""
    if not _EXPECTED:
        return
    with _LOCK:
        name = _EXPECTED.pop(kernel, None)
        if name is None or _CHILD["pid"] != os.getpid():  # a forked process has not the child
            return
        started = time.perf_counter()
        if name not in _CHILD["reported"]:
            for line in _CHILD["process"].stdout:
                _CHILD["reported"].add(line.strip())
                if name in _CHILD["reported"]:
                    break
        for record in _RECORDS:
            record.seconds += time.perf_counter() - started
            record.ahead += name in _CHILD["reported"]
