"""The README's TensorBoard screenshots, taken with a real browser: headless Chromium (Debian's `chromium`)
driven by Playwright, with SwiftShader for WebGL (plain `chromium --headless --screenshot` draws empty charts).

    python docs/screenshots.py --logdir runs [--out docs/images] [--chromium /usr/bin/chromium]

Needs `pip install playwright` (not a trainctl dependency; the browser is the system's, nothing is downloaded).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

# (file name, dashboard, text that must be on the page before the shot, extra wait in seconds)
SHOTS = [
    ("tensorboard_scalars.png", "custom_scalars", "train vs val", 4),
    ("tensorboard_hparams.png", "hparams", "Trial ID", 4),
    ("tensorboard_images.png", "images", "images", 4),
    ("tensorboard_text.png", "text", "model/summary", 3),
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logdir", default="runs")
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
            page = browser.new_page(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
            for name, dashboard, expect, settle in SHOTS:
                if args.only and name not in args.only:
                    continue
                page.goto(f"http://127.0.0.1:{port}/#{dashboard}", wait_until="networkidle")
                page.get_by_text(expect, exact=False).first.wait_for(timeout=30_000)
                if dashboard == "hparams":  # TensorBoard ticks only the first few columns: show the swept one too
                    for column, on in (("optimizer.lr", True), ("device", False), ("loss", False), ("dataset", False)):
                        box = page.get_by_role("checkbox", name=column, exact=True)
                        if box.count():
                            box.first.set_checked(on, timeout=10_000)
                time.sleep(settle)  # charts draw after their data arrives
                page.screenshot(path=str(out / name))
                print(f"wrote {out / name}")
            browser.close()
    finally:
        board.terminate()
        board.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
