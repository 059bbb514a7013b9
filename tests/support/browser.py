"""Headless Debian Chromium driven by Playwright: no browser download, loopback only."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Browser, async_playwright

# Without the background-networking flags Chromium keeps dialling out, which this closed
# network refuses; --no-sandbox because the tests run as root.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError("Debian's chromium is missing: `make test` installs it")
    return path


@asynccontextmanager
async def headless_chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
