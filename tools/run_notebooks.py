"""Execute every notebook; write executed copies, one HTML page each, and the run's timings.

Usage: python tools/run_notebooks.py [--out build] [--timeout 1800] [notebooks/NN_*.ipynb ...]
The profile is the automatic one unless $XAI_PROFILE says otherwise. ``run_<profile>.json``
(profile, device, seconds and status per notebook) feeds the course site (``make site``), which
shows the times of every profile run into the same folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import CellExecutionError, ExecutePreprocessor

ROOT = Path(__file__).resolve().parents[1]


def run_one(path: Path, out: Path, timeout: int) -> tuple[bool, float]:
    """Execute ``path`` in its own folder; write ``out/<name>.ipynb`` and ``.html``."""
    nb = nbformat.read(path, as_version=4)
    start = time.monotonic()
    ok = True
    try:
        ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(
            nb, {"metadata": {"path": str(path.parent)}})
    except CellExecutionError as err:
        ok = False
        print(f"    error: {str(err).splitlines()[-1] if str(err) else err}", flush=True)
    seconds = time.monotonic() - start
    nbformat.write(nb, out / path.name)
    body, _ = HTMLExporter().from_notebook_node(nb)
    (out / path.with_suffix(".html").name).write_text(body, encoding="utf-8")
    return ok, seconds


def write_run(out: Path, rows: list[tuple[str, bool, float]]) -> Path:
    """``run_<profile>.json``: the run's profile and device, each notebook's status and time."""
    from helpers.profile import cuda_gpu_present, get_profile

    run = {"profile": get_profile().name, "device": "GPU" if cuda_gpu_present() else "CPU",
           "notebooks": {n: {"ok": ok, "seconds": round(s, 1)} for n, ok, s in rows}}
    path = out / f"run_{run['profile']}.json"
    path.write_text(json.dumps(run, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "build")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args()
    # Progress widgets are saved at 0 % in executed notebooks: kernels run without them (the
    # per-epoch lines are printed anyway). Students running live still see the bars.
    os.environ.setdefault("TQDM_DISABLE", "1")
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, path in enumerate(paths, start=1):
        print(f"[{i}/{len(paths)}] {path.name} ...", flush=True)
        ok, seconds = run_one(path.resolve(), args.out, args.timeout)
        print(f"[{i}/{len(paths)}] {path.name}: {'ok' if ok else 'ERROR'} in {seconds:.0f} s",
              flush=True)
        rows.append((path.name, ok, seconds))
    print(f"Wrote {write_run(args.out, rows)} (the course site: make site)")
    return 0 if all(ok for _, ok, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
