"""Shared memory that a stopped cluster left behind in /dev/shm.

vLLM's CPU executor passes scheduler output, prompt token ids included, between its
processes through POSIX shared memory (`psm_*`, Python's multiprocessing), and Python's
multiprocessing creates named semaphores (`sem.mp-*`). A process that Ray kills never
unlinks them, so they outlive the cluster, in memory, until the machine reboots. After a
cluster stops, `sweep` removes those that nothing maps any more.

Written by hand: no library knows which segments are orphans. A segment counts as one
only when no live process maps it (every user of a POSIX segment or semaphore maps it, so
this is what "in use" means), it has the name pattern of the two creators above, it
belongs to this user, and it changed since the cluster started.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

SHM = Path("/dev/shm")
_ORPHAN_NAMES = re.compile(r"^(psm_[0-9a-f]+|sem\.mp-[a-z0-9_]+)$")


def mapped_paths(proc: Path = Path("/proc")) -> set[str]:
    """Every file that a live process (of those this user may inspect) has mapped."""
    paths: set[str] = set()
    for maps in proc.glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:  # exited meanwhile, or not ours to read
            continue
        for line in text.splitlines():
            fields = line.split(maxsplit=5)
            if len(fields) == 6:
                paths.add(fields[5].removesuffix(" (deleted)"))
    return paths


def scan(since: float, shm: Path = SHM) -> tuple[list[Path], int]:
    """(orphans, how many more are still mapped): segments and semaphores with the
    creators' names, of this user, changed since `since` (a time.time())."""
    if not shm.is_dir():
        return [], 0
    in_use = mapped_paths()
    found, busy = [], 0
    for path in sorted(shm.iterdir()):
        if not _ORPHAN_NAMES.match(path.name):
            continue
        try:
            status = path.stat()
        except FileNotFoundError:
            continue
        if status.st_uid != os.getuid() or status.st_mtime < since:
            continue
        if str(path) in in_use:
            busy += 1
        else:
            found.append(path)
    return found, busy


def sweep(since: float, shm: Path = SHM, settle_seconds: float = 10.0) -> int:
    """Remove the orphans; the number removed. A process that Ray is still taking down
    may map a segment for a few seconds more: wait up to `settle_seconds` for it."""
    deadline = time.monotonic() + settle_seconds
    removed = 0
    while True:
        found, busy = scan(since, shm)
        for path in found:
            path.unlink(missing_ok=True)
            removed += 1
        if not busy or time.monotonic() >= deadline:
            return removed
        time.sleep(0.5)
