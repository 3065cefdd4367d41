"""The bundle installs as one distribution with every package folder in it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_every_package_folder(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("jupyterhub_civis-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    for source, package in [
        ("jupyterhub_civis", "jupyterhub_civis"),
        ("spawner", "jupyterhub_civis/spawner"),
        ("query_cache", "jupyterhub_civis/query_cache"),
    ]:
        modules = [
            p.relative_to(ROOT / source)
            for p in (ROOT / source).rglob("*.py")
            if "node_modules" not in p.parts  # the labextension's build tools
        ]
        assert modules, source
        for module in modules:
            assert f"{package}/{module.as_posix()}" in names, f"{source}/{module} not in wheel"
    assert "jupyterhub_civis/spawner/templates/options_form.html" in names
    for data in ("templates/queries.html", "hub_templates/page.html", "static/queries.js"):
        assert f"jupyterhub_civis/service/{data}" in names, data
    assert any(n.endswith("jupyter_server_config.d/jupyterhub_civis.json") for n in names)
    for data in ("templates/share.html", "shares/rendered.css", "static/shares.js"):
        assert f"jupyterhub_civis/service/{data}" in names, data
    # the prebuilt JupyterLab extension (make labextension) travels as data files
    labext = "data/share/jupyter/labextensions/jupyterhub-civis-share/"
    assert any(n.endswith(labext + "package.json") for n in names)
    assert any(labext + "static/remoteEntry." in n for n in names)
    assert not [n for n in names if "node_modules" in n]
    assert not [n for n in names if n.startswith(("spawner/", "query_cache/", "tests/"))]

    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "civis-local = jupyterhub_civis.spawner:CivisLocalSpawner" in text
    assert "jupyterhub-civis = jupyterhub_civis.cli:main" in text


def test_the_hub_finds_the_spawner_by_its_entry_point():
    from jupyterhub.app import JupyterHub

    hub = JupyterHub(spawner_class="civis-local")
    assert hub.spawner_class.__module__ == "jupyterhub_civis.spawner.local"


def ruff(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=cwd, capture_output=True, text=True
    )


def test_no_module_imports_the_bare_folder_names():
    result = ruff("check", "--select", "TID", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_lint_rule_catches_bare_imports(tmp_path):
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (tmp_path / "bad.py").write_text("from spawner import base\nimport query_cache.x\n")
    result = ruff("check", "--select", "TID251", "--no-cache", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.count("TID251") == 2, result.stdout


def test_check_config_command_reports_catalog_errors(tmp_path):
    bad = tmp_path / "jupyterhub_config.py"
    bad.write_text(
        "c.JupyterHub.spawner_class = 'civis-local'\n"
        "c.CivisSpawner.environments = [{'name': 'a'}, {'name': 'a'}]\n"
    )
    cli = Path(sys.executable).parent / "jupyterhub-civis"
    result = subprocess.run([cli, "check-config", str(bad)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "the name 'a' is used twice" in result.stderr

    good = ROOT / "config" / "local" / "jupyterhub_config.py"
    result = subprocess.run(
        [cli, "check-config", str(good)],
        capture_output=True,
        text=True,
        env={"CIVIS_STATE_DIR": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert '"python-tabulate"' in result.stdout


def test_every_imported_library_is_a_declared_requirement():
    """A library the bundle imports must be required by name (or by an extra), not
    merely arrive with another requirement."""
    import ast
    import configparser
    import re
    from importlib.metadata import packages_distributions

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].split()
    for extra in cfg["options.extras_require"]:
        if extra != "test":
            lines += cfg["options.extras_require"][extra].split()
    declared = {
        re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower().replace("_", "-")
        for line in lines
        if line and line[0].isalpha()
    }
    distributions = packages_distributions()
    # the kernel client's modules run only inside a kernel, which brings them
    in_every_kernel = {"IPython", "ipykernel"}
    missing = set()
    for folder in ("jupyterhub_civis", "spawner", "query_cache"):
        for path in (ROOT / folder).rglob("*.py"):
            if "node_modules" in path.parts:  # the labextension's build tools, not ours
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names | in_every_kernel | {"jupyterhub_civis"}:
                        continue
                    dists = {d.lower().replace("_", "-") for d in distributions.get(top, [])}
                    if not dists & declared:
                        missing.add(f"{top} ({path.relative_to(ROOT)})")
    assert not missing, sorted(missing)
