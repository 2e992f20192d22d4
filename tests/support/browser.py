"""Debian's Chromium driven by Playwright (the Python package; no `playwright install`)."""

import shutil
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    if not shutil.which(CHROMIUM):
        raise RuntimeError(
            f"{CHROMIUM} is missing: `make test` installs it as root (apt-get install chromium)"
        )
    return CHROMIUM


async def launch(playwright: Playwright) -> Browser:
    return await playwright.chromium.launch(
        executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
    )


@dataclass
class Watched:
    """A page with everything it logged at error level and every request that left
    the server's origin (there must be none: no CDN)."""

    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)


async def open_page(
    browser: Browser, base_url: str, token: str | None = None, **options: Any
) -> Watched:
    """A fresh context at 1280x800 (the width the dashboard must fit); with `token`, signed
    in as the dashboard remembers a token in local storage."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, **options)
    if token:
        await context.add_init_script(f"localStorage.setItem('agentplane.token', {token!r});")
    page = await context.new_page()
    watched = Watched(context, page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.errors.append(f"pageerror: {exc}"))

    async def only_local(route: Any) -> None:
        if route.request.url.startswith((base_url, "data:")):
            await route.continue_()
        else:
            watched.foreign.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_local)
    return watched
