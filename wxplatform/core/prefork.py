"""Celery's prefork pool, with result pipes large enough that a child never waits to write a result.

A pool child writes each result to a pipe that the worker's event loop reads. A failed task's result carries
its traceback, frames included: tens of kilobytes for a chunk that failed on a lost database or Redis
(9 chained tracebacks in tests/cluster/test_node_cut_off.py), beyond Linux's default 64 KiB pipe. While the
event loop is away (Celery's reconnect loop after a lost broker connection runs in its place, for as long as
the broker is unreachable), such a child blocks mid-write. When the loop comes back, time limits that fell
due meanwhile fire at once: the soft limit's signal interrupts the half-written result, the next message
lands inside it, and celery 5.7 stops with "Unrecoverable error: UnicodeDecodeError" (the process stays up
and consumes nothing). With 1 MiB pipes the write completes at once and the loop reads whole results later.

`CELERY_WORKER_POOL` names this class, so a worker started without `-P` uses it.
"""

from __future__ import annotations

import contextlib
import fcntl
from typing import Any

from celery.concurrency import asynpool, prefork

# /proc/sys/fs/pipe-max-size, Linux's default ceiling for an unprivileged process.
RESULT_PIPE_BYTES = 1 << 20


class AsynPool(asynpool.AsynPool):
    def create_process_queues(self) -> Any:
        inq, outq, synq = super().create_process_queues()
        # Where the ceiling is lower (or off Linux) the pipe keeps its size: Celery's own behaviour.
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(outq._writer.fileno(), fcntl.F_SETPIPE_SZ, RESULT_PIPE_BYTES)
        return inq, outq, synq


class TaskPool(prefork.TaskPool):
    Pool = AsynPool
