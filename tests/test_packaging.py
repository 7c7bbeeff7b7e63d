"""gpu-hog as a user gets it: a wheel built from the sources, installed into a fresh
virtual environment, run from a folder that is not the checkout.

The venv is made with ``--system-site-packages`` so that hog's dependencies (multiprocess,
rich, pyyaml) come from this machine instead of being downloaded, and the test works
offline apart from the build's own requirements (setuptools, wheel: pip's build
isolation). The venv's site-packages comes first on its path, so the ``hog`` that runs is
the wheel's, not this checkout nor an editable install (checked through ``hog.__file__``).
"""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hog import __version__

from .harness import CHECKOUT, hog_env, job_file

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(180)]

SOURCES = ("hog", "setup.cfg", "pyproject.toml", "README.md", "LICENSE")
ASSETS = ("report.css", "report.html", "report.js")


def run(argv, cwd, env=None, timeout=120) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in argv], cwd=str(cwd), env=env, capture_output=True,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"{' '.join(map(str, argv))} exited {r.returncode}:\n" \
                              f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def copy_sources(dest: Path) -> Path:
    """What a source distribution holds, copied (without caches) so the build never
    writes build/ or *.egg-info into the checkout."""
    for name in SOURCES:
        src = CHECKOUT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    (tmp / "src").mkdir()
    src = copy_sources(tmp / "src")
    dist = tmp / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, src], cwd=tmp,
        env=user_env())
    wheels = list(dist.glob("*.whl"))
    assert [w.name for w in wheels] == [f"gpu_hog-{__version__}-py3-none-any.whl"]
    return wheels[0]


def user_env() -> dict:
    """The test's environment (its tag) without this checkout on PYTHONPATH."""
    return hog_env({"PYTHONPATH": None, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})


def test_the_wheel_is_gpu_hog_with_its_license_report_assets_and_hog_command(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        info = f"gpu_hog-{__version__}.dist-info"
        metadata = z.read(f"{info}/METADATA").decode()
        entry_points = z.read(f"{info}/entry_points.txt").decode()
        assert any(n.startswith(info) and n.endswith("/LICENSE") for n in names), names
    assert {f"hog/views/report/assets/{a}" for a in ASSETS} <= names
    assert "hog/__init__.py" in names and "hog/backends/ray/keeper.py" in names
    assert not any(n.startswith("tests/") for n in names)
    assert "Name: gpu-hog\n" in metadata and "License: MIT\n" in metadata
    assert "hog = hog.cli:main" in entry_points
    assert "MIT License" in (CHECKOUT / "LICENSE").read_text()
    assert "the gpu-hog authors" in (CHECKOUT / "LICENSE").read_text()


def test_the_installed_wheel_runs_a_sweep_and_writes_a_report_from_any_directory(wheel,
                                                                                 tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv],
        cwd=tmp_path)
    python, hog = venv / "bin" / "python", venv / "bin" / "hog"
    # the dependencies must already be satisfied here: nothing is downloaded
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index",
         wheel], cwd=tmp_path, env=user_env())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = user_env()

    where = run([python, "-c", "import hog; print(hog.__file__)"], cwd=elsewhere, env=env)
    assert where.stdout.strip().startswith(str(venv)), where.stdout
    version = run([hog, "--version"], cwd=elsewhere, env=env)
    assert __version__ in version.stdout

    job_file(elsewhere, "echo hello from $CUDA_VISIBLE_DEVICES")
    run([hog, "--job_file", "jobs.txt", "--gpus", "0", "--display", "plain"], cwd=elsewhere,
        env=env)
    assert (elsewhere / "output" / "job_0" / "job_0.OUT").read_text() == "hello from 0\n"

    run([hog, "report", "output"], cwd=elsewhere, env=env)
    page = (elsewhere / "output" / "report.html").read_text()
    css = (CHECKOUT / "hog/views/report/assets/report.css").read_text()
    assert css.splitlines()[1].strip() in page         # the assets were found and inlined
