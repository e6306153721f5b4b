"""The README's TensorBoard screenshots, taken with a real browser: headless Chromium (Debian's `chromium`)
driven by Playwright, with SwiftShader for WebGL (plain `chromium --headless --screenshot` draws empty charts).

    python docs/screenshots.py --logdir runs [--run baseline] [--out docs/images] [--chromium /usr/bin/chromium]

`--logdir` is meant to hold a single run, a grid and a sweep together (the README's shots: one run named
`baseline`, a 4-job grid and an 8-trial sweep); `--run` is a regex of the single run, for the shots that show one
run (its train/val overlay, its images, its text). Each shot waits for what it shows to be drawn (chart lines,
table cells, images), fails if that never comes, and is saved with at most 256 colours (a few dozen KB).

Needs `apt-get install chromium` and `pip install playwright` (not a trainctl dependency; Playwright drives the
system's browser, it downloads none). The README ("Seeing what training does") lists the commands that made its
log directory.
"""

from __future__ import annotations

import argparse
import io
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Shot:
    name: str  # file name under --out
    dashboard: str  # TensorBoard's URL fragment
    ready: str  # CSS selector (Playwright's, it pierces shadow roots) that must be on the page before the shot
    one_run: bool = False  # show only the --run run (legacy dashboards: their run filter)
    tab: str = ""  # a tab inside the dashboard to click first
    tag_filter: str = ""  # a regex typed into the dashboard's tag filter
    width: int = 1400
    height: int = 900
    scroll_right: bool = False  # scroll the HParams table to its last column
    whole: bool = False  # charts show every point (no outlier clipping) and the raw values (no smoothing)
    hover: tuple[float, float] | None = None  # where to rest the mouse on the first `ready` element (fractions)


SHOTS = [
    # The run list (one entry per run, no `steps` twins) and two curves of every run.
    Shot("tensorboard_timeseries.png", "timeseries", "line-chart canvas", tag_filter="^(val/acc|train/loss_step)$",
         whole=True),
    # Train and validation of each metric in one chart: the custom scalars' `train vs val` layout.
    Shot("tensorboard_scalars.png", "custom_scalars", "vz-line-chart2", one_run=True, whole=True,
         hover=(0.6, 0.3)),
    # HParams as it opens: the varied hyperparameters, then the `best/*` metric columns, shown without a click; on a
    # 1920-pixel screen the last ones lie beyond the edge, so the table is scrolled to its end (the run names go).
    Shot("tensorboard_hparams.png", "hparams", "tf-hparams-table-view vaadin-grid-cell-content", width=1920,
         scroll_right=True),
    Shot("tensorboard_parallel.png", "hparams", "tf-hparams-parallel-coords-plot path", tab="PARALLEL COORDINATES VIEW"),
    # The most wrong test images, whose labels read at the card's size, and the confusion matrix.
    Shot("tensorboard_images.png", "images", "tf-image-loader img", one_run=True, tag_filter="most_wrong|confusion",
         height=860),
    Shot("tensorboard_text.png", "text", "tf-text-loader", one_run=True, tag_filter="model/summary"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise SystemExit(f"tensorboard did not start on port {port}")


def small_png(png: bytes, path: Path) -> None:
    """The screenshot with at most 256 colours: TensorBoard's flat UI loses nothing visible, the file a third."""
    from PIL import Image

    Image.open(io.BytesIO(png)).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def take(browser: Any, port: int, shot: Shot, run: str, out: Path) -> None:
    # A fresh page per shot: TensorBoard keeps the dashboards already opened in the page, hidden, and their inputs
    # would be found first.
    page = browser.new_page(viewport={"width": shot.width, "height": shot.height}, device_scale_factor=1)
    page.goto(f"http://127.0.0.1:{port}/#{shot.dashboard}", wait_until="networkidle")
    if shot.one_run:  # the legacy dashboards' run filter, a labelled Polymer input
        page.get_by_label("Write a regex to filter runs").first.fill(run)
    if shot.tag_filter:
        angular = shot.dashboard == "timeseries"  # the others are Polymer's, with a label for a placeholder
        box = page.locator("input[placeholder^='Filter tags']") if angular else page.get_by_label("Filter tags")
        box.first.fill(shot.tag_filter)
    if shot.whole:  # with a few epochs a point can pass for an outlier and its line leave the chart
        page.get_by_role("checkbox", name="Ignore outliers in chart scaling").first.set_checked(False)
        smoothing = page.locator("input[type=number]").first
        smoothing.fill("0")
        smoothing.press("Enter")
    if shot.dashboard == "timeseries" and page.get_by_role("heading", name="Settings").count():
        page.get_by_role("button", name="Settings").first.click()  # it opens with its panel over a third of the page
    if shot.tab:
        page.get_by_text(shot.tab, exact=True).first.click()
    page.locator(shot.ready).first.wait_for(state="visible", timeout=60_000)
    page.wait_for_load_state("networkidle")
    time.sleep(3)  # charts animate in after their data arrives
    if shot.scroll_right:
        page.locator("vaadin-grid").first.evaluate(
            "grid => { const table = grid.shadowRoot.querySelector('#table'); table.scrollLeft = table.scrollWidth; }")
        time.sleep(1)
    if shot.hover:  # a point of the first chart, so its tooltip names each line
        box = page.locator(shot.ready).first.bounding_box()
        page.mouse.move(box["x"] + box["width"] * shot.hover[0], box["y"] + box["height"] * shot.hover[1])
        time.sleep(1)
    small_png(page.screenshot(), out / shot.name)
    page.close()
    print(f"wrote {out / shot.name} ({(out / shot.name).stat().st_size // 1024} KB)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logdir", default="runs")
    parser.add_argument("--run", default="baseline", help="regex of the one run the single-run shots show")
    parser.add_argument("--out", default=str(Path(__file__).parent / "images"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--only", nargs="*", help="file names of the shots to take (default: all)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    board = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", args.logdir, "--port", str(port),
                              "--host", "127.0.0.1", "--reload_interval", "0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=[
                "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"])
            for shot in SHOTS:
                if not args.only or shot.name in args.only:
                    take(browser, port, shot, args.run, out)
            browser.close()
    finally:
        board.terminate()
        board.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
