"""The `ecommerce-saga` command: `serve` runs the app, `demo` walks through four orders."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from ecommerce_saga.demo import run_demo
from ecommerce_saga.logs import configure_logging
from ecommerce_saga.persistence import DatabaseStartupError
from ecommerce_saga.settings import Settings
from ecommerce_saga.split import run_split


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecommerce-saga", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="run the app (embedded database unless SHOP_MONGODB_URL is set)"
    )
    serve.add_argument("--host", help="address to bind (default SHOP_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default SHOP_PORT or 8000)")
    split = commands.add_parser(
        "run-split", help="run the five modules as five local services (ports 8000-8004) on one database"
    )
    split.add_argument("--host", default="127.0.0.1")
    split.add_argument(
        "--base-port", type=int, default=8000, help="the order service's port; the others follow"
    )
    demo = commands.add_parser("demo", help="place four demo orders against a running server")
    demo.add_argument("--url", default=os.environ.get("SHOP_URL", "http://127.0.0.1:8000"))
    return parser


def serve(host: str | None, port: int | None) -> int:
    """Run the app with uvicorn until interrupted."""
    overrides = {key: value for key, value in {"host": host, "port": port}.items() if value is not None}
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(str(error["msg"]).removeprefix("Value error, ") for error in exc.errors())
        sys.stderr.write(f"ecommerce-saga: invalid settings: {problems}\n")
        return 2
    configure_logging(settings.log_format, settings.log_level)
    from ecommerce_saga.main import create_app  # noqa: PLC0415 - after logging is configured

    try:
        uvicorn.run(
            create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False
        )
    except DatabaseStartupError as exc:
        sys.stderr.write(f"ecommerce-saga: {exc}\n")
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args.host, args.port)
    if args.command == "run-split":
        configure_logging("text")
        return run_split(_data_dir(), args.host, args.base_port)
    return run_demo(args.url)


def _data_dir() -> Path:
    return Path(os.environ.get("SHOP_DATA_DIR", ".data"))
