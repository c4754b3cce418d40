"""How many draft/count calls per second the sandbox answers with 50 ms of WeChat latency.

The sandbox runs as its own process (`python -m wxsandbox`), as in the demo, so that it and this
aiohttp client each get a core. With 128 requests in flight and 50 ms per answer the ceiling is
128 / 0.05 = 2,560 requests/s; the figure shows how close the sandbox gets to it.

    python -m bench sandbox                 # or: python bench/bench_sandbox.py --seconds 5 --in-flight 128
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from wxsandbox.control import SandboxControl  # noqa: E402 - after the path fix for script use


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _hammer(base_url: str, tokens: list[str], *, seconds: float, in_flight: int) -> tuple[int, int, list[float]]:
    ok = errors = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(index: int) -> None:
            nonlocal ok, errors
            rng = random.Random(index)
            while time.monotonic() < deadline:
                token = rng.choice(tokens)
                started = time.monotonic()
                async with session.get(f"{base_url}/cgi-bin/draft/count", params={"access_token": token}) as answer:
                    data = await answer.json(content_type=None)
                latencies.append(time.monotonic() - started)
                if answer.status == 200 and "total_count" in data:
                    ok += 1
                else:
                    errors += 1

        await asyncio.gather(*(worker(i) for i in range(in_flight)))
    return ok, errors, latencies


def run(*, seconds: float, in_flight: int, latency: float, tenants: int) -> None:
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "wxsandbox", "--port", str(port), "--ticket-interval", "0",
         "--latency", str(latency), "--seed", "1"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        control = SandboxControl(base_url)
        control.wait_until_ready(timeout=30)
        # Enough quota that no call is refused with 45009 during the run.
        control.update_config(daily_quota=10**9)
        started = time.monotonic()
        accounts = control.bulk_create_authorizers(tenants, prefix="bench", draft_count=(0, 100))
        seeded = time.monotonic() - started
        tokens = [a["authorizer_access_token"] for a in accounts]

        ok, errors, latencies = asyncio.run(_hammer(base_url, tokens, seconds=seconds, in_flight=in_flight))
        counted = control.counters()["endpoints"]["/cgi-bin/draft/count"]["calls"]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)

    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    print(f"seeded {tenants} tenants in {seeded * 1000:.0f} ms")
    ceiling = f"ceiling {in_flight / latency:,.0f}/s" if latency else "no latency ceiling"
    print(
        f"draft/count, {latency * 1000:.0f} ms latency, {in_flight} in flight, {seconds:.0f} s: "
        f"{ok / seconds:,.0f} requests/s ({ok} ok, {errors} errors, {counted} counted by the sandbox; {ceiling})"
    )
    print(f"latency p50 {quantiles[49] * 1000:.1f} ms, p99 {quantiles[98] * 1000:.1f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--in-flight", type=int, default=128)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--tenants", type=int, default=5000)
    args = parser.parse_args(argv if argv is not None else [])
    run(seconds=args.seconds, in_flight=args.in_flight, latency=args.latency, tenants=args.tenants)


if __name__ == "__main__":
    main(sys.argv[1:])
