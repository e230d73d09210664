"""The wheel ships the twistd dropin the way Twisted's plugin system finds it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel() -> Path:
    out = Path(tempfile.mkdtemp(prefix="planet-wheel-"))
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                str(out),
                str(ROOT),
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
    except subprocess.CalledProcessError as exc:  # pragma: no cover - shown on failure
        pytest.fail(exc.stderr.decode(errors="replace"))
    yield next(out.glob("planet-*.whl"))
    shutil.rmtree(out, ignore_errors=True)


@pytest.mark.slow
def test_wheel_holds_the_dropin_and_no_plugin_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "twisted/plugins/planet_plugin.py" in names
    # An __init__.py there would hide every plugin; a dropin.cache would clobber Twisted's.
    assert not {n for n in names if n.startswith("twisted/") and not n.endswith("planet_plugin.py")}
    assert "planet/templates/river.html" in names
    assert "planet/style.css" in names


# That a non-editable install registers `twistd planet` is checked by .ci/run in a fresh
# virtualenv: in this one the editable install's copy of the dropin would always be found.
