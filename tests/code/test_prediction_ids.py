"""Prediction ids are unique within a process, across forks, and 32 hex characters."""

from __future__ import annotations

import os
import re

from inference.prediction_ids import new_ids


def test_ids_are_unique_hex_and_differ_after_a_fork() -> None:
    first = new_ids(1000)
    assert len(set(first)) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in first)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new process prefix, so no id collides with the parent's
        os.write(write, " ".join(new_ids(5)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode().split()
    assert len(child) == 5 and not set(child) & set(first + new_ids(5))
    assert {c[:16] for c in child} != {first[0][:16]}
