"""``scripts/install``: its optional steps (Chromium for the browser tests, the TypeScript
compiler for the contract check) never fail a command that needs neither: ``scripts/demo``
ran into ``apt-get`` failing on the dpkg lock and exited 100 (issue 10)."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def locked_apt(tmp_path: Path) -> dict[str, str]:
    """An environment where apt-get fails as it does while another dpkg runs, and
    Chromium is missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    apt = bin_dir / "apt-get"
    apt.write_text("#!/bin/sh\necho 'E: Could not get lock /var/lib/dpkg/lock-frontend' >&2\n"
                   "exit 100\n")
    apt.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "JOBTRACK_CHROMIUM": str(tmp_path / "no-chromium")}


@pytest.mark.skipif(os.geteuid() != 0, reason="scripts/install installs Chromium only as root")
def test_install_without_for_tests_skips_the_optional_steps(
    locked_apt: dict[str, str],
) -> None:
    proc = subprocess.run([str(ROOT / "scripts/install")], env=locked_apt,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "lock" not in proc.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="scripts/install installs Chromium only as root")
def test_install_for_tests_warns_when_chromium_cannot_be_installed(
    locked_apt: dict[str, str],
) -> None:
    proc = subprocess.run([str(ROOT / "scripts/install"), "--for-tests"], env=locked_apt,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "warning" in proc.stderr and "Chromium" in proc.stderr


def test_demo_installs_without_the_optional_steps() -> None:
    demo = (ROOT / "scripts/demo").read_text()
    assert "scripts/install\n" in demo and "--for-tests" not in demo
    for needs_tools in ("scripts/test", "scripts/check"):
        assert "scripts/install --for-tests" in (ROOT / needs_tools).read_text()
