"""No test can hang the suite: a test past its limit fails with every thread's stack, in seconds."""

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_test_that_sleeps_past_its_limit_fails_with_its_stack(tmp_path):
    (tmp_path / "test_sleeper.py").write_text(
        "import time, pytest\n\n\n@pytest.mark.timeout(2)\n"
        "def test_sleeps_forever():\n    time.sleep(3600)\n")
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"),
                          "-p", "no:cacheprovider", str(tmp_path / "test_sleeper.py")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "tests")})
    out = run.stdout + run.stderr
    assert run.returncode != 0 and time.monotonic() - start < 60
    assert "Timeout" in out and "test_sleeps_forever" in out and "time.sleep(3600)" in out
