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
the kernel instead of compiling it a second time. The wait counts as this process's
compilation time; the child's own compilations are counted apart (`Compilations.ahead`).
"""
import getpass
import os
import subprocess
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
    types; what they call in turn is part of them) and `seconds` (wall-clock time this process
    spent compiling them, or waiting for a kernel a second process compiles ahead); `ahead`
    and `ahead_seconds`, what a second process compiled meanwhile (`expect`)."""

    kernels: int = 0
    seconds: float = 0.0
    ahead: int = 0
    ahead_seconds: float = 0.0

    def __str__(self):
        alongside = f", and {self.ahead} in a second process alongside ({self.ahead_seconds:.1f} s)" if self.ahead else ""
        return f"compiled {self.kernels} Numba kernel{'s' if self.kernels != 1 else ''} in {self.seconds:.1f} s{alongside} (cached for next runs)"


class _Listener(numba_event.Listener):
    """Adds each outermost compilation to a `Compilations` (Numba compiles under one lock, so
    one depth counter serves every thread); `announce()` calls `on_first` once."""

    def __init__(self, record, on_first=None):
        self.record, self.depth, self.started, self.on_first = record, 0, 0.0, on_first

    def announce(self):
        if self.on_first is not None:
            self.on_first()
            self.on_first = None

    def on_start(self, event):
        self.depth += 1
        if self.depth == 1:
            self.announce()
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

    `on_first()`, where given, is called as the block's first compilation, or its first wait for
    a kernel compiled ahead, starts (a notice that the wait has a reason)."""
    record = Compilations()
    listener = _Listener(record, on_first)
    numba_event.register("numba:compile", listener)
    with _OPEN_LOCK:
        _OPEN.append(listener)
    try:
        yield record
    finally:
        with _OPEN_LOCK:
            _OPEN.remove(listener)
        numba_event.unregister("numba:compile", listener)


_OPEN = []  # the listeners of the open compilations() blocks
_OPEN_LOCK = threading.Lock()  # the reports' thread adds to them
WAIT_LIMIT = 120.0  # seconds a kernel's first call waits for the child's report before it stops the child


@dataclass
class _Ahead:
    """A child process compiling kernels ahead, as the process that started it sees it."""

    process: subprocess.Popen
    kernels: dict  # kernel -> the item whose report its first call waits for
    reports: dict  # item -> threading.Event, set on the item's report or the child's end
    pid: int  # the process that started the child (a forked copy does not wait for it)


_AHEAD = None  # the child this process expects reports from, if any


def expect(process, kernels):
    """`process`, a child with text stdout, compiles `kernels` ({kernel: item}) into the cache
    and prints "ITEM KERNELS SECONDS" for each item once done: how many of the item's kernels
    it compiled (0 where the cache had them) and how long that took. A thread reads the
    reports, adds them to the open `compilations()` records, and reaps the child at its end."""
    global _AHEAD
    _AHEAD = _Ahead(process, dict(kernels), {item: threading.Event() for item in kernels.values()}, os.getpid())
    threading.Thread(target=_read_reports, args=(_AHEAD,), name="stochtp-compile-ahead", daemon=True).start()


def _read_reports(ahead):
    try:
        for line in ahead.process.stdout:
            try:
                item, compiled, seconds = line.split()
                compiled, seconds = int(compiled), float(seconds)
            except ValueError:  # not a report
                continue
            if item in ahead.reports:
                with _OPEN_LOCK:
                    for listener in _OPEN:
                        listener.record.ahead += compiled
                        listener.record.ahead_seconds += seconds
                ahead.reports[item].set()
    finally:
        ahead.process.wait()
        for report in ahead.reports.values():
            report.set()


def expecting():
    """Whether a child that this process started is still compiling kernels ahead."""
    ahead = _AHEAD
    return ahead is not None and ahead.pid == os.getpid() and ahead.process.poll() is None


def wait_for(kernel):
    """Before `kernel` runs: where a child of this process compiles it ahead and has not yet
    reported it, wait for its report, its end, or WAIT_LIMIT seconds (then stop it), so that
    the kernel is loaded from the cache rather than compiled twice. The first call decides."""
    ahead = _AHEAD
    if ahead is None or not ahead.kernels or ahead.pid != os.getpid():  # every kernel's call: the cheap tests first
        return
    item = ahead.kernels.pop(kernel, None)
    if item is None or ahead.reports[item].is_set():
        return
    started = time.perf_counter()
    with _OPEN_LOCK:
        listeners = tuple(_OPEN)
    for listener in listeners:
        listener.announce()
    if not ahead.reports[item].wait(WAIT_LIMIT):
        ahead.process.kill()
    for listener in listeners:
        listener.record.seconds += time.perf_counter() - started
