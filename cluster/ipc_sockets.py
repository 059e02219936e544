"""vLLM's ZeroMQ socket files that a stopped cluster left behind in the temp directory.

vLLM's engine talks to its engine core and workers over ZeroMQ at
`ipc://<tempdir>/<uuid4>` (VLLM_RPC_BASE_PATH) and unlinks those files only when its
interpreter exits cleanly; a process that Ray or the engine's shutdown kills leaves them,
seven per engine start here, for good. After a cluster stops, `sweep` removes those that
nothing listens on any more.

Written by hand: no library knows which socket files are orphans. A file counts as one
only when it is a socket, named as vLLM names them (a UUID4), belongs to this user,
changed since the cluster started, and no socket in this network namespace is bound to
it (/proc/net/unix lists every bound path, so nothing has to connect to find out).
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

_VLLM_NAME = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def bound_paths(net_unix: Path = Path("/proc/net/unix")) -> set[str]:
    """Every filesystem path that a unix socket in this network namespace is bound to."""
    try:
        lines = net_unix.read_text().splitlines()[1:]
    except OSError:
        return set()
    # Columns: Num RefCount Protocol Flags Type St Inode [Path]; abstract names start "@".
    fields = (line.split(maxsplit=7) for line in lines)
    return {f[7] for f in fields if len(f) == 8 and f[7].startswith("/")}


def scan(since: float, directory: Path | None = None) -> list[Path]:
    """Orphaned vLLM socket files of this user in `directory` (the temp directory),
    changed since `since` (a time.time())."""
    directory = directory or Path(tempfile.gettempdir())
    bound = bound_paths()
    found = []
    for path in sorted(directory.iterdir()):
        if not _VLLM_NAME.match(path.name):
            continue
        try:
            status = path.lstat()
        except FileNotFoundError:
            continue
        if not stat.S_ISSOCK(status.st_mode) or status.st_uid != os.getuid():
            continue
        if status.st_mtime >= since and str(path) not in bound:
            found.append(path)
    return found


def sweep(since: float, directory: Path | None = None) -> int:
    """Remove the orphans; the number removed."""
    found = scan(since, directory)
    for path in found:
        path.unlink(missing_ok=True)
    return len(found)
