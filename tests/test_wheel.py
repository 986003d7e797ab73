"""Packaging: the version comes from the package metadata, and the built wheel carries its package
data and runs from a fresh environment outside the source tree."""

import importlib.metadata
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

import limitlab
from limitlab.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_version_is_the_installed_distributions(capsys):
    assert limitlab.__version__ == importlib.metadata.version("limitlab")
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"limitlab {limitlab.__version__}"


def test_import_limitlab_stays_light():
    code = ("import sys, limitlab; heavy = [m for m in ('lightning', 'pytorch_lightning', 'mkdocs', 'matplotlib') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """sdist and wheel built from this source tree (the wheel from the sdist, as `python -m build` does)."""
    pytest.importorskip("build", reason="the build package is not installed (it is in the dev extra)")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
                   check=True, capture_output=True, text=True)
    (wheel,) = out.glob("limitlab-*.whl")
    (sdist,) = out.glob("limitlab-*.tar.gz")
    return wheel, sdist


@pytest.mark.packaging
def test_wheel_carries_the_package_data(built):
    wheel, sdist = built
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "limitlab/py.typed" in names
    assert "limitlab/data/digits.csv.gz" in names
    assert {f"limitlab/review/static/{f}" for f in ("index.html", "app.js", "grid.js", "style.css")} <= names
    assert not any(name.startswith(("tests/", "benchmarks/", "docs/")) for name in names)
    version = importlib.metadata.version("limitlab")
    assert wheel.name.startswith(f"limitlab-{version}-")
    assert sdist.name == f"limitlab-{version}.tar.gz"


@pytest.mark.packaging
def test_installed_wheel_runs_outside_the_source_tree(built, tmp_path):
    """A fresh venv (no pip, no packages) whose one .pth line lends it this environment's
    site-packages, so torch is not installed again; limitlab comes from the wheel alone."""
    wheel, _ = built
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    target_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    # A plain path line: torch, numpy, tqdm from here; the .pth files there (our editable install)
    # are not processed, so the only limitlab the new environment sees is the wheel's.
    Path(target_site, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "--quiet", str(wheel)], check=True, capture_output=True, text=True)

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"

    def run(*args):
        return subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, check=True).stdout

    where = run(str(python), "-c", "import limitlab, limitlab.data; print(limitlab.__file__); print(limitlab.__version__)")
    file, version = where.split()
    assert Path(file).is_relative_to(env_dir) and not Path(file).is_relative_to(REPO)
    assert version == importlib.metadata.version("limitlab")
    script = env_dir / ("Scripts/limitlab.exe" if os.name == "nt" else "bin/limitlab")
    assert run(str(script), "--version").strip() == f"limitlab {version}"
    out = run(str(script), "demo", "--epochs", "1", "--quiet", "--out", str(work / "demo"))
    assert "limit-l" in out and "test acc" in out
    assert (work / "demo" / "limit-l" / "summary.json").is_file()


def test_citation_file_cites_the_paper_and_this_version():
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (it comes with the dev extra)")
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert citation["version"] == importlib.metadata.version("limitlab")
    paper = citation["preferred-citation"]
    assert paper["year"] == 2020 and "Label-Noise Information" in paper["title"]
    assert [a["family-names"] for a in paper["authors"]] == ["Harutyunyan", "Reing", "Ver Steeg", "Galstyan"]
    assert "2002.07933" in paper["url"]
