"""`python -m wxsandbox --port 8100 ...`: the sandbox without Django settings (benchmarks, CI)."""

from __future__ import annotations

import argparse
import logging

from wxsandbox.server import add_arguments, serve_from_options


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m wxsandbox", description="WeChat sandbox")
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    serve_from_options(vars(parser.parse_args()))


if __name__ == "__main__":
    main()
