"""Open a report in headless Chromium (selenium): check that every figure rendered with
no script error, and take a screenshot of the first screen.

    problems = browser.missing()          # None, or why no browser can run here
    with browser.chromium() as driver:
        result = browser.render(driver, "out/report.html")   # Rendered(figures, rendered, errors)
    browser.screenshot("out/report.html", "out/report.png")

Script errors are collected twice: ``window.onerror`` (and unhandled rejections) through
a script injected before the page's own scripts run, and the browser's console log at
level SEVERE.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver", "chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run")
WINDOW = (1400, 1000)  # the first screen of the screenshot, CSS pixels
RENDER_TIMEOUT_S = 60.0

# Installed before any script of the page runs (Chrome DevTools' addScriptToEvaluateOnNewDocument).
CATCH_ERRORS = """
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message || e) + ' at ' + (e.filename || '') + ':' + (e.lineno || '')); });
window.addEventListener('unhandledrejection', function (e) { window.__errors.push('unhandled rejection: ' + String(e.reason)); });
"""
COUNT = """
const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
return {ready: document.readyState === 'complete', figures: document.querySelectorAll('div.figure').length,
        plots: plots.length,
        rendered: plots.filter(p => p.querySelector('.main-svg') !== null).length,
        errors: window.__errors || []};
"""


@dataclass
class Rendered:
    figures: int  # figure divs in the page
    rendered: int  # of them, drawn by plotly (an SVG inside)
    errors: list[str]  # window.onerror and console SEVERE messages


def _which(candidates) -> str | None:
    for c in candidates:
        found = shutil.which(c)
        if found:
            return found
    return None


def missing() -> str | None:
    """Why no headless browser can run here, or None."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[dev]')"
    if _which(CHROMIUM) is None:
        return "chromium is not installed (apt-get install chromium)"
    if _which(CHROMEDRIVER) is None:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


@contextlib.contextmanager
def chromium(window=WINDOW):
    """A headless Chromium driven by selenium, with a fresh profile directory."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    reason = missing()
    if reason:
        raise RuntimeError(reason)
    with tempfile.TemporaryDirectory(prefix="arsenal-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = _which(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={window[0]},{window[1]}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(_which(CHROMEDRIVER)))
        try:
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CATCH_ERRORS})
            yield driver
        finally:
            driver.quit()


def render(driver, path, timeout_s: float = RENDER_TIMEOUT_S) -> Rendered:
    """Open ``path`` and wait until the document has loaded and every figure has drawn
    (or the timeout). Counting before the load completes saw 0 of 0 figures once, on a
    5 MB page while both cores were busy."""
    driver.get(Path(path).resolve().as_uri())
    deadline = time.monotonic() + timeout_s
    while True:
        state = driver.execute_script(COUNT)
        done = state["ready"] and state["rendered"] >= state["figures"]
        if done or state["errors"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    console = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    return Rendered(state["figures"], state["rendered"], list(state["errors"]) + console)


def screenshot(path, png, window=WINDOW) -> Rendered:
    """Render ``path`` and save its first screen as ``png``."""
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    with chromium(window) as driver:
        result = render(driver, path)
        driver.save_screenshot(str(png))
    return result
