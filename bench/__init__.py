"""Benchmarks (`python -m bench`); helpers shared by several of them."""

from __future__ import annotations

import os
from pathlib import Path


def group_rss(pgid: int) -> dict[int, int]:
    """RSS in bytes of every process in process group `pgid` (a server and its workers, a worker and its pool)."""
    sizes: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            # Fields after the command name (which may hold spaces): state ppid pgrp ...
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for line in Path(f"/proc/{entry}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes[int(entry)] = int(line.split()[1]) * 1024
        except (OSError, IndexError, ValueError):
            continue
    return sizes
