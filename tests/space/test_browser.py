"""A real browser on the real app: Playwright drives Debian's Chromium (never `playwright install`).

Loads the page, uploads a small real file written from ../shared/data at test time, runs TACOS on the embedded
Gemma 3 270M (started lazily by the app), waits for the result table and the charts, and saves a screenshot that
must not be blank. Set `HF_PREFSEL_SCREENSHOT_DIR` to keep the screenshot (e.g. as a CI artifact).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]


def _require_browser() -> str:
    chromium = shutil.which("chromium")
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install playwright)")
    if chromium is None:
        missing.append("Debian's chromium (apt-get install -y chromium chromium-driver)")
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        missing.append("llama-cpp-python[server]")
    if missing:
        message = "Browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return str(chromium)


def _variance(png: Path) -> tuple[float, int]:
    """Grey-level standard deviation and number of distinct colours of an image (blank pages have ~0 and 1)."""
    from PIL import Image

    image = Image.open(png).convert("RGB")
    pixels = np.asarray(image)
    grey = pixels.mean(axis=2)
    colours = len(np.unique(pixels.reshape(-1, 3)[:: max(1, pixels.size // 3 // 200_000)], axis=0))
    return float(grey.std()), colours


def test_upload_run_tacos_on_local_model_and_screenshot(tmp_path, space_helpers):
    chromium = _require_browser()
    from playwright.sync_api import sync_playwright

    src = space_helpers.shared_path("instructions", "alpaca_selected_subsets-00.jsonl")
    data = space_helpers.write_jsonl(src, tmp_path / "alpaca_40.jsonl", 40, keys=("id", "instruction", "input", "output"))
    app = space_helpers.launch(tmp_path)
    shots = Path(os.environ.get("HF_PREFSEL_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 900},
            )
            try:
                page = context.new_page()
                page.set_default_timeout(60_000)
                page.goto(app.url, wait_until="load")  # not "networkidle": Gradio keeps a heartbeat stream open
                page.locator("#data-status").get_by_text("Loaded").wait_for()
                page.screenshot(path=str(shots / "space_first_view.png"))

                page.get_by_role("tab", name="Upload a file").click()
                started = time.monotonic()
                page.locator("#upload input[type=file]").set_input_files(str(data))
                page.locator("#data-status").get_by_text("alpaca_40.jsonl").wait_for()
                assert "40 rows" in page.locator("#data-status").inner_text()
                assert page.locator("#preview").get_by_text("instruction").count() >= 1

                rows = page.locator("#tacos-rows input[type=number]")
                rows.fill("10")
                rows.press("Enter")
                budget = page.locator("#tacos-budget input")
                budget.fill("3")
                budget.press("Tab")
                page.locator("#run-tacos").click()
                page.locator("#result-summary").get_by_text("TACOS: selected").wait_for(timeout=25 * 60_000)
                elapsed = time.monotonic() - started
                summary = page.locator("#result-summary").inner_text()
                assert "of 10 rows" in summary, summary

                table = page.locator("#result-table")
                assert table.get_by_text("score").count() >= 1
                assert table.locator("tbody tr").count() >= 1
                chart = page.locator("#chart-3")
                chart.locator("svg rect, svg path").first.wait_for()
                page.locator("#tree-view svg").wait_for()
                page.wait_for_timeout(1500)  # let the plots finish their transitions

                full = shots / "space_tacos_result.png"
                page.screenshot(path=str(full), full_page=True)
                chart_png = shots / "space_tacos_chart.png"
                chart.screenshot(path=str(chart_png))
            finally:
                context.close()
        servers = app.children()
        assert servers, "the app should have started the embedded model's servers"
    finally:
        app.stop()
    assert not [pid for pid in servers if Path(f"/proc/{pid}").exists()], "model servers left running after the app stopped"
    std, colours = _variance(full)
    assert std > 10 and colours > 20, (std, colours)
    chart_std, chart_colours = _variance(chart_png)
    assert chart_std > 5 and chart_colours > 5, (chart_std, chart_colours)
    print(f"\nupload -> TACOS result on 10 rows with the embedded model: {elapsed:.1f} s; screenshot {full}")
