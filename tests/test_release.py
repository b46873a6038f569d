"""The release (issue 23): licence, one version and one project URL, a
complete sdist built without warnings, the notebooks' install cell and
badges, optional features naming their extra, and the weights files a user
places by hand. The installed wheel itself is checked by .ci/run
(tools/smoke_wheel.py)."""

import hashlib
import importlib.util
import os
import re
import runpy
import shutil
import subprocess
import sys
import tarfile

import pytest

import kerasnets
from kerasnets import cli, extras
from kerasnets.install import install_source

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ABOUT = runpy.run_path(os.path.join(ROOT, "kerasnets", "_version.py"))
REPOSITORY = ABOUT["REPOSITORY"]
APACHE_2_MD5 = "3b83ef96387f14655fc854ddc3c6bd57"  # apache.org's LICENSE-2.0.txt


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_git_checkout():
    return shutil.which("git") is not None and os.path.exists(os.path.join(ROOT, ".git"))


def _tracked_files():
    return subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.split()


# ------------------------------------------------------------ metadata


def test_version_has_one_source(capsys):
    assert kerasnets.__version__ == ABOUT["__version__"]
    assert not re.search(r"version\s*=\s*[\"']\d", _read("setup.py")), (
        "setup.py must read the version from kerasnets/_version.py")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"kerasnets {kerasnets.__version__}"


def test_licence_is_the_full_apache_2_text():
    with open(os.path.join(ROOT, "LICENSE"), "rb") as f:
        assert hashlib.md5(f.read()).hexdigest() == APACHE_2_MD5
    assert 'license="Apache-2.0"' in _read("setup.py")
    assert 'license_files=["LICENSE"]' in _read("setup.py")
    assert re.search(r"^include .*\bLICENSE\b", _read("MANIFEST.in"), re.MULTILINE)


def test_build_system_is_declared():
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        build_system = tomllib.load(f)["build-system"]
    assert build_system["build-backend"] == "setuptools.build_meta"
    assert any(r.startswith("setuptools") for r in build_system["requires"])


def test_project_url_is_declared_once():
    """setup.py derives its URLs from REPOSITORY; every link to the project
    in the documentation and notebooks is that address."""
    assert "github.com" not in _read("setup.py")
    assert REPOSITORY.startswith("https://github.com/")
    owner = REPOSITORY.split("/")[3]
    texts = [os.path.join(folder, name) for folder in ("", "docs", "notebooks")
             if os.path.isdir(os.path.join(ROOT, folder))
             for name in os.listdir(os.path.join(ROOT, folder))
             if name.endswith((".md", ".ipynb"))]
    assert texts
    for path in texts:
        for url in re.findall(rf"https://(?:colab\.research\.google\.com/)?github(?:\.com)?/"
                              rf"{owner}/[\w-]+", _read(path)):
            assert url.replace("colab.research.google.com/github", "github.com") == REPOSITORY, (
                f"{path}: {url} is not {REPOSITORY}")


@pytest.mark.skipif(not _is_git_checkout(), reason="needs the git checkout (its file list)")
def test_sdist_holds_every_tracked_file_and_builds_without_warnings(tmp_path):
    pytest.importorskip("build")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", str(tmp_path), "."],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "warning" not in output.lower(), [
        line for line in output.splitlines() if "warning" in line.lower()]
    (sdist,) = tmp_path.glob("kerasnets-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    missing = [f for f in _tracked_files() if f not in names and f != ".gitignore"]
    assert not missing, f"the sdist lacks {missing} (MANIFEST.in)"
    for name in ("LICENSE", "tests/conftest.py", "tests/parity.py", "pytest.ini",
                 "CHANGELOG.md", "kerasnets/resources/catalog.json"):
        assert name in names


# ------------------------------------------------------------ notebooks


def test_install_source_skips_an_installed_kerasnets(tmp_path):
    assert install_source("git+https://example.invalid/x.git", start=str(tmp_path)) is None


def test_install_source_prefers_the_checkout(tmp_path, monkeypatch):
    checkout = tmp_path / "kerasnets-main"
    (checkout / "kerasnets").mkdir(parents=True)
    (checkout / "setup.py").write_text("")
    (checkout / "kerasnets" / "_version.py").write_text("")
    (checkout / "notebooks").mkdir()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    source = "git+https://example.invalid/x.git"
    assert install_source(source, start=str(checkout / "notebooks")) == str(checkout)
    assert install_source(source, start=str(checkout)) == str(checkout)
    # a folder with a setup.py of another project is not a checkout
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "setup.py").write_text("")
    assert install_source(source, start=str(tmp_path / "other")) == source
    assert install_source("dist/kerasnets-0.1.0-py3-none-any.whl", start="/") == (
        "dist/kerasnets-0.1.0-py3-none-any.whl")


def test_notebook_headers_are_current():
    """Every notebook starts with the Colab badge of the declared repository
    and the install cell holding install_source's source."""
    header = _tool("make_notebook_header")
    assert header.main(["--check"]) == 0, "run python tools/make_notebook_header.py"
    assert header.colab_url("01_quickstart") == REPOSITORY.replace(
        "https://github.com/", "https://colab.research.google.com/github/") + (
        "/blob/main/notebooks/01_quickstart.ipynb")
    assert f'"git+{REPOSITORY}.git"' in header.INSTALL_CELL
    import inspect
    assert inspect.getsource(install_source).rstrip() in header.INSTALL_CELL


# ------------------------------------------------------------ extras


def test_onnx_export_names_its_extra_before_building(tmp_path, monkeypatch, capsys):
    from kerasnets.export import exporter

    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # not installed
    monkeypatch.setattr(exporter, "resolve_model",
                        lambda *a, **k: pytest.fail("the model was built"))
    target = tmp_path / "model.onnx"
    with pytest.raises(extras.MissingExtraError, match=re.escape(
            'ONNX export needs tf2onnx, not installed: pip install "kerasnets[export]"')):
        exporter.export_model("MobileNetV2", str(target), weights=None)
    assert cli.main(["export", "MobileNetV2", "-o", str(target), "--weights", "none"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith('pip install "kerasnets[export]"') and "\n" not in err
    assert not target.exists()


def test_extras_name_what_setup_py_installs():
    setup_py = _read("setup.py")
    for extra, modules in extras.EXTRAS.items():
        declared = re.search(rf'"{extra}": \[([^\]]*)\]', setup_py)[1]
        for module in modules:
            assert f'"{module}' in declared, f"{module} is not in the {extra} extra"


# ------------------------------------------------------------ weights files


def test_info_files_names_each_cache_file(tmp_path, monkeypatch, capsys):
    """`kerasnets info NAME --files`: the URL of each published file and the
    exact cache path the loader reads it from (where a user places it by
    hand to work offline)."""
    from kerasnets import weights
    from kerasnets.weights import cache

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert cli.main(["info", "densenet121", "--files"]) == 0
    out = capsys.readouterr().out
    for include_top in (True, False):
        url, _, path = cache.source_location(weights.pretrained_cfg("DenseNet121", "imagenet"),
                                             include_top)
        assert url in out and f"cache file: {path}" in out
        assert path.startswith(str(tmp_path / "models" / "kerasnets"))
    assert "DenseNet121.imagenet.densenet121_weights_tf_dim_ordering_tf_kernels.h5" in out
    assert "tv_in1k" in out
    assert cli.main(["info", "DenseNet264", "--files"]) == 1
    assert "no published pretrained weights" in capsys.readouterr().err


# ------------------------------------------------------------ heavy: the cell, installing


@pytest.mark.heavy
@pytest.mark.skipif(not _is_git_checkout(), reason="needs the git checkout (its file list)")
def test_notebook_install_cell_installs_from_the_right_source(tmp_path):
    """The install cell itself, run in a fresh virtual environment: from the
    checkout when run inside one, from a git URL and from a wheel's URL
    (local stand-ins for the network) elsewhere, nothing once installed."""
    header = _tool("make_notebook_header")
    repo = tmp_path / "repo"  # the working tree's tracked files as a git repository
    for name in _tracked_files():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), repo / name)
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "-C", str(repo)]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(git + args, check=True)
    cell = tmp_path / "cell.py"
    cell.write_text(header.INSTALL_CELL)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PIP_NO_DEPS"] = "1"  # kerasnets alone: its dependencies would come from the index
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run_cell(cwd, source=None):
        result = subprocess.run(
            [python, str(cell)], cwd=cwd, capture_output=True, text=True, timeout=600,
            env={**env, **({"KERASNETS_SOURCE": source} if source else {})})
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result.stdout

    def installed():
        result = subprocess.run(
            [python, "-c", "import importlib.metadata as m, importlib.util as u; "
             "print(u.find_spec('kerasnets').origin, m.version('kerasnets'))"],
            cwd=elsewhere, capture_output=True, text=True, env=env, check=True)
        origin, version = result.stdout.split()
        assert origin.startswith(str(venv)) and version == kerasnets.__version__
        subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", "kerasnets"],
                       cwd=elsewhere, env=env, check=True)

    assert f"installing kerasnets from {repo}\n" in run_cell(repo / "notebooks")
    assert run_cell(elsewhere) == "kerasnets is installed\n"
    installed()
    git_url = f"git+file://{repo}"
    assert f"from {git_url}" in run_cell(elsewhere, git_url)
    installed()
    wheels = tmp_path / "wheels"
    subprocess.run([python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                    str(repo)], env=env, check=True, timeout=600)
    (wheel,) = wheels.glob("kerasnets-*.whl")
    assert f"from {wheel}" in run_cell(elsewhere, str(wheel))
    installed()
