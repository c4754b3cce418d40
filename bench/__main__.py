"""`make bench`: runs every bench/bench_*.py module's `main()` in turn, each printing its own figures.

Select some with `python -m bench sync api`; options follow one name: `python -m bench scale --accounts 100000`.
Benchmarks need PostgreSQL and Redis (the Makefile points DATABASE_URL and REDIS_URL at them) and start their
own sandbox, workers and servers.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))
    # Options after the names (`python -m bench scale --accounts 1000000`) go to the one benchmark named.
    split = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    argv, options = argv[:split], argv[split:]
    wanted = [f"bench_{a}" for a in argv] or names
    if options and len(wanted) != 1:
        print("options are for one benchmark at a time: python -m bench scale --accounts 20000")
        return 2
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        print(f"unknown benchmarks: {', '.join(unknown)}; available: {', '.join(n[6:] for n in names)}")
        return 2
    for name in wanted:
        print(f"\n=== {name[6:]} ===", flush=True)
        started = time.monotonic()
        importlib.import_module(f"bench.{name}").main(options)
        print(f"({name[6:]} took {time.monotonic() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
