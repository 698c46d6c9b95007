"""Serves the saga console: the page at `/console` and its static assets under `/console/static`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from starlette.staticfiles import StaticFiles

CONSOLE_DIR = Path(__file__).parent / "static" / "console"
"""The console's files: `index.html`, `console.css` and the ES modules under `js/`."""

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
"""Only the app's own scripts and styles run on the page; nothing inline, nothing from elsewhere."""

_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def install_console(app: FastAPI) -> None:
    """Serve the console page at `/console` and its assets at `/console/static` (not in OpenAPI)."""
    app.mount("/console/static", StaticFiles(directory=CONSOLE_DIR), name="console-static")

    @app.get("/console", include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(CONSOLE_DIR / "index.html", media_type="text/html", headers=_PAGE_HEADERS)

    @app.get("/console/", include_in_schema=False)
    async def console_slash() -> RedirectResponse:
        # The page's links are relative to `/console` (so the app may live under a path prefix).
        return RedirectResponse("../console", status_code=308)
