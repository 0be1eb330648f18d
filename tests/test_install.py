"""stochtp installed as a user installs it: the sdist and the wheel built from this checkout hold
the presets, and the wheel, installed into a fresh virtual environment away from the checkout,
lists them and trains one of them.

Nothing is downloaded: the wheel is installed without its dependencies, which the fresh
environment finds in this one's site-packages (a .pth file), and the checkout itself is not on
its path. The run is one epoch of paper-stochastic-dtp on MNIST where $STOCHTP_DATA holds it,
else on a teacher task of MNIST's shape (784 inputs, 10 classes).
"""
import os
import shutil
import site
import subprocess
import sys
import tarfile
import zipfile

import h5py
import pytest
from conftest import REPO_ROOT

from stochtp import config

PRESET = "paper-stochastic-dtp"
MNIST_STAND_IN = ["dataset=teacher", "data.n_in=784", "data.n_classes=10", "data.n_train=300", "data.n_valid=100", "data.n_test=100"]


def run(argv, **options):
    """Run a command to completion; its output goes into the failure message."""
    result = subprocess.run([str(part) for part in argv], capture_output=True, text=True, **options)
    assert result.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def distributions(tmp_path_factory):
    """(sdist, wheel) built from a copy of the checkout's package files (a build leaves build/ and
    *.egg-info beside its sources), the wheel from the sdist, as `python -m build` makes them."""
    root = tmp_path_factory.mktemp("build")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    shutil.copytree(REPO_ROOT / "stochtp", source / "stochtp", ignore=shutil.ignore_patterns("__pycache__"))
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", root / "dist", source])
    (sdist,) = (root / "dist").glob("*.tar.gz")
    (wheel,) = (root / "dist").glob("*.whl")
    return sdist, wheel


@pytest.mark.slow
def test_the_sdist_and_the_wheel_hold_every_preset(distributions):
    sdist, wheel = distributions
    presets = {f"{name}.toml" for name in config.preset_files()}
    assert "estimators.toml" in presets and f"{PRESET}.toml" in presets
    with tarfile.open(sdist) as archive:
        assert presets <= {os.path.basename(name) for name in archive.getnames() if "/stochtp/presets/" in name}
    with zipfile.ZipFile(wheel) as archive:
        assert presets <= {os.path.basename(name) for name in archive.namelist() if name.startswith("stochtp/presets/")}


@pytest.mark.slow
def test_the_wheel_installed_elsewhere_lists_and_runs_a_preset(distributions, tmp_path):
    _, wheel = distributions
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    python, command = venv / "bin" / "python", venv / "bin" / "stochtp"
    venv_site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip()
    # numpy, numba, h5py... from this environment, after the fresh one's own site-packages
    with open(os.path.join(venv_site, "dependencies.pth"), "w") as pth:
        pth.write("\n".join(site.getsitepackages()) + "\n")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheel], env=env, cwd=tmp_path)

    where = run([python, "-c", "import stochtp, stochtp.config as c; print(stochtp.__file__); print(*c.presets())"], env=env, cwd=tmp_path)
    module_file, listed = where.splitlines()
    assert module_file.startswith(str(venv)), f"stochtp was imported from {module_file}, not from the fresh environment"
    assert set(listed.split()) == set(config.presets())
    assert PRESET in "".join(run([command, "run", "--help"], env=env, cwd=tmp_path).split())  # argparse wraps at hyphens

    out = tmp_path / "run.h5"
    data = [] if os.environ.get("STOCHTP_DATA") else [option for setting in MNIST_STAND_IN for option in ("--set", setting)]
    run([command, "run", "--preset", PRESET, "--epochs", "1", *data, "--threads", "1", "--quiet", "--out", out], env=env, cwd=tmp_path)
    with h5py.File(out, "r") as h5file:
        (run_group,) = h5file["runs"].values()
        assert run_group.attrs["status"] == "completed" and run_group.attrs["name"] == PRESET
        assert len(run_group["metrics/epoch"]) == 1
