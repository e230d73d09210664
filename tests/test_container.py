"""The Containerfile: what it declares, and its command line run as a plain process.

Building the image needs a container engine, which .ci/run uses where one works; these
tests check the file itself everywhere: a non-root user, the snapshot volume, the health
check, and that its CMD (with the container's paths swapped for temporary ones) starts a
daemon that the HEALTHCHECK command finds healthy.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from process import Daemon

ROOT = Path(__file__).resolve().parents[1]
CONTAINERFILE = ROOT / "Containerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def one(name: str) -> str:
    values = [rest for word, rest in instructions() if word == name]
    assert len(values) == 1, (name, values)
    return values[0]


def test_runs_as_a_non_root_user_with_the_snapshot_in_a_volume():
    assert one("USER") == "planet"
    assert json.loads(one("VOLUME")) == ["/var/lib/planet"]
    assert one("FROM").endswith("python:3.11-slim")
    assert one("EXPOSE") == "8080"
    # The image's own copy of the ignore file keeps a developer's venv out of the build.
    ignored = (ROOT / ".containerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_cmd_listens_on_all_interfaces_and_keeps_state_in_the_volume():
    cmd = json.loads(one("CMD"))
    assert cmd[:5] == ["twistd", "--nodaemon", "--pidfile=", "--logfile=-", "planet"]
    args = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert args == {
        "--config": "/etc/planet/planet.ini",
        "--listen": "tcp:8080",
        "--state-dir": "/var/lib/planet",
    }


@pytest.mark.slow
def test_the_cmd_serves_and_the_healthcheck_passes(tmp_path: Path):
    cmd = json.loads(one("CMD"))
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "planet.ini"
    # The example config, with its feeds dropped: no network in tests.
    example = (ROOT / "etc" / "planet.ini").read_text().split("\n[http", 1)[0]
    config.write_text(example)
    args = [
        {
            "/etc/planet/planet.ini": str(config),
            "tcp:8080": "tcp:0:interface=127.0.0.1",
            "/var/lib/planet": str(state),
        }.get(a, a)
        for a in cmd[5:]
    ]
    with Daemon(tmp_path, args=args) as daemon:
        daemon.start()
        daemon.wait_health(lambda h: h["status"] == "ok", what="healthy")
        check = json.loads(one("HEALTHCHECK").split("CMD", 1)[1])
        assert check[0] == "python"
        program = check[2].replace("127.0.0.1:8080", f"127.0.0.1:{daemon.port}")
        ok = subprocess.run([sys.executable, "-c", program], timeout=10, check=False)
        assert ok.returncode == 0
        code, log = daemon.stop()
    assert code in (0, -15), log
    # The snapshot went to the state directory, as in the volume.
    assert (state / "planet-snapshot.json").exists(), log
