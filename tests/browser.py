"""Headless Debian Chromium driven by selenium, for the real-browser tests (marker ``browser``).

Only the system's browser and driver are used (``apt-get install chromium chromium-driver``):
the driver path is given to selenium explicitly, so Selenium Manager never runs and never
downloads anything. Chromium is started with its background networking off and every host name
resolving to nothing, so the browser cannot reach the network either; selenium itself talks to
chromedriver on localhost only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL_HINT = "apt-get install chromium chromium-driver"

ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
    "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
    "--disable-extensions", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-default-apps", "--disable-domain-reliability", "--no-pings",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost",
    "--hide-scrollbars", "--force-device-scale-factor=1",
]


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def chromium_available() -> str | None:
    """None when headless Chromium can be driven here, else the reason to skip."""
    for path, what in ((CHROMIUM, "Chromium"), (CHROMEDRIVER, "chromedriver")):
        if not _executable(path):
            return f"{what} not installed at {path} ({INSTALL_HINT})"
    try:
        import selenium  # noqa: F401
        from selenium import webdriver  # noqa: F401
    except ImportError as err:
        return f"selenium is not installed ({err}; pip install selenium)"
    return None


@contextmanager
def chromium(*, log_level: str = "ALL"):
    """Yield a selenium WebDriver for headless Chromium; the browser quits on exit. The
    browser console is captured (``driver.get_log("browser")``)."""
    reason = chromium_available()
    if reason is not None:
        raise RuntimeError(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # belt and braces: were Selenium Manager ever consulted, it must stay offline
    saved = {k: os.environ.get(k) for k in ("SE_OFFLINE", "SE_AVOID_STATS")}
    os.environ["SE_OFFLINE"] = "true"
    os.environ["SE_AVOID_STATS"] = "true"
    profile = tempfile.mkdtemp(prefix="srbench-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": log_level})
    service = Service(executable_path=str(CHROMEDRIVER), service_args=["--log-level=WARNING"])
    driver = None
    try:
        driver = webdriver.Chrome(service=service, options=options)
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(10)
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
