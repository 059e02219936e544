"""The /dev/shm sweep after a cluster stops: only unmapped segments with vLLM's and
multiprocessing's names, changed since the cluster started, are removed."""

import mmap
import os
import time

from cluster.shared_memory import scan, sweep


def _segment(directory, name, age_seconds=0.0):
    path = directory / name
    path.write_bytes(bytes(4096))
    if age_seconds:
        then = time.time() - age_seconds
        os.utime(path, (then, then))
    return path


def test_only_orphans_of_this_cluster_are_swept(tmp_path):
    started = time.time() - 60
    orphan = _segment(tmp_path, "psm_0a1b2c3d")
    semaphore = _segment(tmp_path, "sem.mp-4ettfi6r")
    older = _segment(tmp_path, "psm_99999999", age_seconds=3600)  # before the cluster
    other = _segment(tmp_path, "postgres-segment")  # not a name we sweep
    live = _segment(tmp_path, "psm_feedface")
    with live.open("r+b") as handle, mmap.mmap(handle.fileno(), 4096):
        found, busy = scan(started, tmp_path)
        assert found == [orphan, semaphore] and busy == 1
        assert sweep(started, tmp_path, settle_seconds=0) == 2
        assert live.exists()  # mapped: in use by a live process
    assert not orphan.exists() and not semaphore.exists()
    assert older.exists() and other.exists()
    assert sweep(started, tmp_path) == 1 and not live.exists()  # once nobody maps it
