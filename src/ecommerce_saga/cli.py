"""The `ecommerce-saga` command: `serve` runs the app, `demo` walks through four orders, `token` signs in."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from email_validator import EmailNotValidError, validate_email
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from ecommerce_saga.bootstrap import audit_sources
from ecommerce_saga.db.connection import connect
from ecommerce_saga.db.embedded import DatabaseStartupError, EmbeddedMongo
from ecommerce_saga.devtools.demo import DEMO_CUSTOMER, DEMO_EMAIL, run_demo
from ecommerce_saga.devtools.split import run_split
from ecommerce_saga.identity import DevelopmentIssuer
from ecommerce_saga.observability.logs import configure_logging
from ecommerce_saga.operations.audit import audit
from ecommerce_saga.saga import StoreUnavailableError
from ecommerce_saga.settings import Settings
from ecommerce_saga.shared.contracts import SAFE_ID_PATTERN

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecommerce-saga", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="run the app (embedded database unless SHOP_MONGODB_URL is set)"
    )
    serve.add_argument("--host", help="address to bind (default SHOP_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default SHOP_PORT or 8000)")
    serve.add_argument(
        "--workers", type=int, help="uvicorn worker processes on one database (default SHOP_WORKERS or 1)"
    )
    split = commands.add_parser(
        "run-split", help="run the five modules as five local services (ports 8000-8004) on one database"
    )
    split.add_argument("--host", default="127.0.0.1")
    split.add_argument(
        "--base-port", type=int, default=8000, help="the order service's port; the others follow"
    )
    audit = commands.add_parser(
        "audit", help="check that every module's records agree (exit 1 on a violation, 3 if unsettled)"
    )
    audit.add_argument("--url", help="MongoDB URL (default SHOP_MONGODB_URL)")
    audit.add_argument("--db", help="database name (default SHOP_MONGODB_DB)")
    audit.add_argument("--json", action="store_true", help="print the report as JSON")
    demo = commands.add_parser("demo", help="place four demo orders against a running server")
    demo.add_argument("--url", default=os.environ.get("SHOP_URL", "http://127.0.0.1:8000"))
    demo.add_argument(
        "--token",
        default=os.environ.get("SHOP_TOKEN"),
        help=f"the customer's access token (default SHOP_TOKEN, else a development one for {DEMO_CUSTOMER})",
    )
    token = commands.add_parser(
        "token", help="print an access token signed by the development issuer (not with SHOP_OIDC_ISSUER)"
    )
    token.add_argument("--customer", required=True, help="the customer id (the token's subject)")
    token.add_argument("--admin", action="store_true", help="with the admin role: an operator's token")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (default 3600)")
    token.add_argument("--email", help="the customer's email address (the token's `email` claim)")
    return parser


def _settings(**given: object) -> Settings | None:
    """The settings from `SHOP_*` and the given overrides (None ones ignored); None, said why, if invalid."""
    overrides = {key: value for key, value in given.items() if value is not None}
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(str(error["msg"]).removeprefix("Value error, ") for error in exc.errors())
        sys.stderr.write(f"ecommerce-saga: invalid settings: {problems}\n")
        return None


def serve(host: str | None, port: int | None, workers: int | None = None) -> int:
    """Run the app with uvicorn until interrupted."""
    settings = _settings(host=host, port=port, workers=workers)
    if settings is None:
        return 2
    configure_logging(settings.log_format, settings.log_level)
    if settings.workers > 1:
        return _serve_workers(settings)
    from ecommerce_saga.main import create_app  # noqa: PLC0415 - after logging is configured

    try:
        uvicorn.run(
            create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False
        )
    except DatabaseStartupError as exc:
        sys.stderr.write(f"ecommerce-saga: {exc}\n")
        return 2
    return 0


def _serve_workers(settings: Settings) -> int:
    """Run `settings.workers` uvicorn worker processes on one database.

    Each worker is a whole app with its own saga worker id (host and pid); they share the sagas
    through leases. The embedded database, if used, is started here once and its URL handed down.
    """
    environment = {
        "SHOP_HOST": settings.host,
        "SHOP_PORT": str(settings.port),
        "SHOP_WORKERS": "1",  # each worker process is one app
        "SHOP_DEMO_CATALOG": str(settings.loads_demo_catalog).lower(),
        "SHOP_METRICS_PORT": "0",  # N workers cannot share one management port; replicas can
    }
    if settings.metrics_port:
        logger.warning("with several workers /metrics is not served: run one worker per replica instead")
    if os.environ.pop("SHOP_WORKER_ID", None) is not None:
        logger.warning("SHOP_WORKER_ID is ignored with several workers: each uses its host and pid")
    embedded = None
    if settings.uses_embedded_database:
        embedded = EmbeddedMongo(data_dir=settings.data_dir)
        try:
            embedded.start(settings.mongodb_start_timeout_seconds)
        except DatabaseStartupError as exc:
            sys.stderr.write(f"ecommerce-saga: {exc}\n")
            return 2
        environment["SHOP_MONGODB_URL"] = embedded.url
    os.environ.update(environment)
    try:
        uvicorn.run(
            "ecommerce_saga.main:app_from_environment",
            factory=True,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
        )
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def development_issuer() -> DevelopmentIssuer | None:
    """The development issuer of the data folder; None, said why, when an identity provider is set."""
    settings = _settings()
    if settings is None:
        return None
    if not settings.uses_development_issuer:
        sys.stderr.write(
            "ecommerce-saga: SHOP_OIDC_ISSUER is set, so the development issuer is off: "
            "get a token from your identity provider\n"
        )
        return None
    from ecommerce_saga.bootstrap import oidc_claims  # noqa: PLC0415 - the whole shop, only for this

    return DevelopmentIssuer.load_or_create(settings.data_dir, oidc_claims(settings))


def print_token(customer: str, *, admin: bool, ttl: int, email: str | None = None) -> int:
    """Print a development token for `customer` (the operator's role if `admin`), with `email`."""
    if not re.fullmatch(SAFE_ID_PATTERN, customer) or not 0 < ttl <= 31 * 24 * 3600:
        sys.stderr.write("ecommerce-saga: --customer must be a valid id and --ttl 1 s to 31 days\n")
        return 2
    if email is not None:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError:
            sys.stderr.write("ecommerce-saga: --email is not a valid email address\n")
            return 2
    issuer = development_issuer()
    if issuer is None:
        return 2
    sys.stdout.write(issuer.mint(customer, admin=admin, ttl_seconds=ttl, email=email) + "\n")
    return 0


def demo(url: str, token: str | None) -> int:
    """Run the demo with `token`, or with a development token of the demo customer."""
    if token is None:
        issuer = development_issuer()
        if issuer is None:
            sys.stderr.write("ecommerce-saga: pass the customer's token with --token or SHOP_TOKEN\n")
            return 2
        token = issuer.mint(DEMO_CUSTOMER, ttl_seconds=600, email=DEMO_EMAIL)
    return run_demo(url, token)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args.host, args.port, args.workers)
    if args.command == "run-split":
        configure_logging("text")
        return run_split(_data_dir(), args.host, args.base_port)
    if args.command == "audit":
        return asyncio.run(run_audit(args.url, args.db, as_json=args.json))
    if args.command == "token":
        return print_token(args.customer, admin=args.admin, ttl=args.ttl, email=args.email)
    return demo(args.url, args.token)


async def run_audit(url: str | None, db_name: str | None, *, as_json: bool = False) -> int:
    """Print the audit of a database: 0 if it is consistent, 1 on a violation, 3 if not settled."""
    settings = _settings()
    if settings is None:
        return 2
    url = url or (settings.mongodb_url.get_secret_value() if settings.mongodb_url else None)
    if url is None:
        sys.stderr.write(
            "ecommerce-saga: audit needs --url or SHOP_MONGODB_URL (a running app with the embedded "
            "database logs its URL at start-up, and serves the same report at GET /api/audit)\n"
        )
        return 2
    client, db = connect(url, db_name or settings.mongodb_db)
    try:
        report = await audit(audit_sources(db))
    except (PyMongoError, StoreUnavailableError) as exc:
        sys.stderr.write(f"ecommerce-saga: the database could not be read: {exc}\n")
        return 2
    finally:
        await client.close()
    sys.stdout.write((report.model_dump_json(indent=2) if as_json else report.summary()) + "\n")
    if report.violations:
        return 1
    return 0 if report.settled else 3


def _data_dir() -> Path:
    return Path(os.environ.get("SHOP_DATA_DIR", ".data"))
