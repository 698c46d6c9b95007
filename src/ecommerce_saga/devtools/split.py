"""`ecommerce-saga run-split`: the five modules as five local processes sharing one database."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx

from ecommerce_saga.db.embedded import DatabaseStartupError, EmbeddedMongo, die_with_parent
from ecommerce_saga.settings import MODULE_NAMES

logger = logging.getLogger(__name__)

BASE_PORT = 8000
"""The order service's port; inventory, payment, shipping and notification follow it (8001-8004)."""
METRICS_BASE_PORT = 9090
"""The order service's management port (`/metrics`); the others follow it (9091-9094)."""


def ports(base: int) -> dict[str, int]:
    """Each module's port in a local split topology."""
    return {module: base + offset for offset, module in enumerate(MODULE_NAMES)}


def service_environment(
    module: str,
    host: str,
    mongodb_url: str,
    *,
    token: str,
    admin_token: str,
    base_port: int = BASE_PORT,
    metrics_base_port: int = METRICS_BASE_PORT,
) -> dict[str, str]:
    """The environment of the process hosting `module` in a local split topology."""
    where = ports(base_port)
    env = {
        **os.environ,
        "SHOP_MODULES": module,
        "SHOP_HOST": host,
        "SHOP_PORT": str(where[module]),
        "SHOP_METRICS_PORT": str(ports(metrics_base_port)[module]),
        "SHOP_MONGODB_URL": mongodb_url,
        "SHOP_SERVICE_TOKEN": token,
        "SHOP_ADMIN_TOKEN": admin_token,
        "SHOP_WORKER_ID": f"{module}-{os.getpid()}",
    }
    if module == "inventory":
        env.setdefault("SHOP_DEMO_CATALOG", "true")
    for other in MODULE_NAMES:
        if other != module:
            env[f"SHOP_{other.upper()}_URL"] = f"http://{host}:{where[other]}"
    return env


def _wait_ready(
    host: str, where: dict[str, int], processes: dict[str, subprocess.Popen[bytes]], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    pending = set(processes)
    while pending and time.monotonic() < deadline:
        for module in sorted(pending):
            if processes[module].poll() is not None:
                raise RuntimeError(f"the {module} service exited with {processes[module].returncode}")
            try:
                if httpx.get(f"http://{host}:{where[module]}/readyz", timeout=1).status_code == 200:
                    pending.discard(module)
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    if pending:
        raise RuntimeError(f"not ready after {timeout:.0f}s: {', '.join(sorted(pending))}")


def run_split(data_dir: Path, host: str = "127.0.0.1", base_port: int = BASE_PORT) -> int:
    """Start the embedded database and the five services; stop them all together."""
    where = ports(base_port)
    metrics_base_port = int(os.environ.get("SHOP_METRICS_PORT") or METRICS_BASE_PORT)
    token = os.environ.get("SHOP_SERVICE_TOKEN") or secrets.token_urlsafe(24)
    admin_token = os.environ.get("SHOP_ADMIN_TOKEN") or secrets.token_urlsafe(24)
    database = EmbeddedMongo(data_dir=data_dir)
    try:
        database.start()  # copes with a previous run's server still on the folder; refuses a live app's
    except DatabaseStartupError as exc:
        sys.stderr.write(f"ecommerce-saga split: {exc}\n")
        return 2
    mongodb_url = os.environ.get("SHOP_MONGODB_URL") or database.url
    processes: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for module in MODULE_NAMES:
            processes[module] = subprocess.Popen(
                [sys.executable, "-m", "ecommerce_saga", "serve"],
                env=service_environment(
                    module,
                    host,
                    mongodb_url,
                    token=token,
                    admin_token=admin_token,
                    base_port=base_port,
                    metrics_base_port=metrics_base_port,
                ),
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only sets the death signal
            )
        _wait_ready(host, where, processes, timeout=90)
        sys.stderr.write(
            "ecommerce-saga split: " + ", ".join(f"{m} http://{host}:{p}" for m, p in where.items()) + "\n"
            "metrics (management ports): "
            + ", ".join(f"{m} http://{host}:{p}/metrics" for m, p in ports(metrics_base_port).items())
            + "\n"
            "operator and customer tokens: ecommerce-saga token --customer ID [--admin]\n"
        )
        while not stopping and all(p.poll() is None for p in processes.values()):
            time.sleep(0.2)
        return 0 if stopping else 1
    except RuntimeError as exc:
        sys.stderr.write(f"ecommerce-saga split: {exc}\n")
        return 1
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        database.stop()
