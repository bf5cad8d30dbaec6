"""The README's picture: samples of a finished search's best model beside the MLflow runs table of
that search, as a user sees it in a browser (headless Chromium, driven as tests/browser.py does).

    .venv/bin/python scripts/readme_images.py ray_results/quickstart --tracking-uri sqlite:///mlflow.db \
        --out docs/images/quickstart.png

It draws 64 samples from SEARCH/best (`matnet.sample`), starts `mlflow server` on a free loopback port
over the tracking store, opens the search's experiment on its training-runs table, expands the
search's parent run to show its trials, screenshots the page, and writes the two side by side.
Needs Debian's `chromium`; every server it starts is stopped at the end.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def samples(search: Path, out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "matnet.sample", str(search / "best"), "--n", "64", "--seed", "0",
                    "--out", str(out)], check=True, cwd=ROOT)
    return out


def runs_table(search: Path, tracking_uri: str, out: Path) -> Path:
    """The MLflow UI's runs table of the search's experiment, its parent run expanded."""
    import mlflow

    from tests.browser import Browser
    from tests.servers import mlflow_server
    info = json.loads((search / "search.json").read_text())
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(info["tracking"]["mlflow"]["experiment"])
    if experiment is None:
        raise SystemExit(f"error: no MLflow experiment of {search} in {tracking_uri}")
    # The trials' runs carry the search's tag too: the parent is the one without a parent.
    parents = [r for r in client.search_runs([experiment.experiment_id], f"tags.search_name = '{info['name']}'",
                                             order_by=["attributes.start_time DESC"])
               if "mlflow.parentRunId" not in r.data.tags][:1]
    with tempfile.TemporaryDirectory() as tmp, mlflow_server(tracking_uri, Path(tmp) / "artifacts") as server, \
            Browser(width=1500, height=720) as browser:
        browser.open(f"{server}/#/experiments/{experiment.experiment_id}?workflowType=machine_learning")
        link = "a[href$='/runs/{}']".format
        if parents:
            parent = parents[0].info.run_id
            browser.wait_for(f"!!document.querySelector(\"{link(parent)}\")", what="the search's parent run")
            browser.click_button_beside(link(parent))  # the expander: the search's trials under it
        browser.wait_for("document.querySelectorAll(\"a[href*='/runs/']\").length > 3", what="the trials' runs")
        # MLflow 3.17 opens its assistant's side panel: closed, the table gets the width.
        browser.evaluate("""(() => {
            const buttons = [...document.querySelectorAll("button[aria-label]")]
                .filter(b => /close/i.test(b.getAttribute("aria-label")));
            if (buttons.length) { buttons[buttons.length - 1].click(); return true; }
            return false; })()""")
        time.sleep(2)  # the table's columns settle after the rows arrive
        return browser.screenshot(out)


def side_by_side(left: Path, right: Path, out: Path) -> Path:
    from PIL import Image
    a, b = Image.open(left).convert("RGB"), Image.open(right).convert("RGB")
    a = a.resize((b.height * a.width // a.height, b.height), Image.NEAREST)
    canvas = Image.new("RGB", (a.width + b.width + 16, b.height), "white")
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width + 16, 0))
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, optimize=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("search", type=Path, help="a finished search's folder (STORAGE/NAME)")
    p.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "quickstart.png")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        grid = samples(args.search.resolve(), Path(tmp) / "samples.png")
        table = runs_table(args.search.resolve(), args.tracking_uri, Path(tmp) / "runs.png")
        print(side_by_side(grid, table, args.out))


if __name__ == "__main__":
    main()
