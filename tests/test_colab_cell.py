"""The first cell of every notebook in a simulated Colab runtime: clone once, reuse after a
restart, never read the repository URL as a git option."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def first_cell(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


def run_in_colab(cell: str, workdir: Path, env: dict) -> subprocess.CompletedProcess:
    """The cell in a fresh interpreter with a stand-in ``google.colab`` module and without
    site-packages (so this checkout's installed ``helpers`` is not found), like a bare runtime."""
    code = ("import sys, types\n"
            "sys.modules['google'] = types.ModuleType('google')\n"
            "sys.modules['google.colab'] = types.ModuleType('google.colab')\n"
            f"exec(compile({cell!r}, 'first_cell', 'exec'))\n"
            "import helpers\nprint('helpers from', helpers.__file__)\n")
    return subprocess.run([sys.executable, "-S", "-c", code], cwd=workdir, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def test_every_notebook_starts_with_the_same_cell():
    assert len({first_cell(path) for path in NOTEBOOKS}) == 1


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout to clone")
def test_clone_then_reuse_after_a_restart(tmp_path):
    cell, workdir, clone = first_cell(NOTEBOOKS[0]), tmp_path / "content", tmp_path / "xai"
    workdir.mkdir()
    env = {"XAI_REPO_URL": ROOT.as_uri(), "XAI_CLONE_DIR": str(clone)}
    first = run_in_colab(cell, workdir, env)
    assert first.returncode == 0, first.stderr
    assert f"helpers from {clone / 'helpers'}" in first.stdout
    assert (clone / "notebooks").is_dir()
    again = run_in_colab(cell, workdir, env)  # "Restart runtime": same folder, clone exists
    assert again.returncode == 0, again.stderr
    assert f"Uso el repositorio ya clonado en {clone}" in again.stdout
    assert f"helpers from {clone / 'helpers'}" in again.stdout


def test_a_url_that_looks_like_an_option_is_not_one(tmp_path):
    cell, workdir = first_cell(NOTEBOOKS[0]), tmp_path / "content"
    workdir.mkdir()
    marker = tmp_path / "pwned"
    url = f"--upload-pack=touch {marker}"
    done = run_in_colab(cell, workdir, {"XAI_REPO_URL": url, "XAI_CLONE_DIR": str(tmp_path / "x")})
    assert done.returncode != 0 and "CalledProcessError" in done.stderr
    assert f"repository '{url}' does not exist" in done.stderr  # git read it as the repository
    assert not marker.exists()
