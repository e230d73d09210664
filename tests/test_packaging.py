"""The wheel ships the twistd dropin the way Twisted's plugin system finds it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
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
    yield next(out.glob("planet_aggregator-*.whl"))
    shutil.rmtree(out, ignore_errors=True)


@pytest.mark.slow
def test_wheel_holds_the_dropin_and_no_plugin_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "twisted/plugins/planet_plugin.py" in names
    # An __init__.py there would hide every plugin; a dropin.cache would clobber Twisted's.
    assert not {n for n in names if n.startswith("twisted/") and not n.endswith("planet_plugin.py")}
    assert "planet/templates/river.html" in names
    assert "planet/themes/default/style.css" in names
    assert "planet/themes/default/index.html.j2" in names


# That a non-editable install registers `twistd planet` is checked by .ci/run in a fresh
# virtualenv: in this one the editable install's copy of the dropin would always be found.


@pytest.fixture(scope="module")
def dists() -> Path:
    """An sdist, and a wheel built from that sdist (``python -m build`` does both)."""
    out = Path(tempfile.mkdtemp(prefix="planet-dist-"))
    try:
        subprocess.run(
            [sys.executable, "-m", "build", "--no-isolation", "-o", str(out), str(ROOT)],
            check=True,
            capture_output=True,
            timeout=300,
        )
    except subprocess.CalledProcessError as exc:  # pragma: no cover - shown on failure
        pytest.fail(exc.stdout.decode(errors="replace") + exc.stderr.decode(errors="replace"))
    yield out
    shutil.rmtree(out, ignore_errors=True)


@pytest.mark.slow
def test_sdist_and_wheel_carry_complete_metadata(dists: Path) -> None:
    (sdist,) = dists.glob("planet_aggregator-*.tar.gz")
    (wheel,) = dists.glob("planet_aggregator-*.whl")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "pyproject.toml", "src/planet/cli.py"} <= names
    assert "twisted/plugins/planet_plugin.py" in names
    with zipfile.ZipFile(wheel) as z:
        (meta_name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        meta = z.read(meta_name).decode()
        licenses = [n for n in z.namelist() if ".dist-info/licenses/" in n]
        entry_points = z.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    headers = meta.split("\n\n", 1)[0].splitlines()
    assert "Name: planet-aggregator" in headers
    assert "License-Expression: MIT" in headers
    assert "Classifier: Framework :: Twisted" in headers
    assert any(h.startswith("Requires-Python: >=3.10") for h in headers)
    assert any(h.startswith("Requires-Dist: twisted") for h in headers)
    assert licenses == [f"{meta_name.split('/')[0]}/licenses/LICENSE"]
    assert "planet = planet.cli:main" in entry_points
    # The long description is the README.
    assert "# planet" in meta.split("\n\n", 1)[1]
