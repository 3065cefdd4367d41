"""The Kubernetes runbook's install command, run exactly as written, against the pins of the
z2jh chart's hub image: it adds the bundle and changes none of the image's packages.

No image can be pulled here, so the image is stood in for by a virtualenv holding the hub
image's exact pins (the chart release's images/hub/requirements.txt, from ../shared/z2jh;
pycurl and psycopg2 need C headers to build and are left out: nothing the bundle needs
depends on them, and they stay constraints). Then the `RUN` line of docs/kubernetes.md's
Dockerfile runs in a shell, with the Dockerfile's `CIVIS_PACKAGE` pointing at this checkout.

To keep the test short, uv first installs (from its cache) what the bundle adds, resolved
under the same pins; the runbook's pip then resolves the whole set under the image's pins
and installs the bundle itself. Had uv found no solution under the pins, the test fails
there, with uv's explanation.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
Z2JH = Path(os.environ.get("CIVIS_Z2JH_DIR", ROOT.parent / "shared" / "z2jh"))
PINS = Z2JH / "chart-4.4.0" / "hub-image-requirements.txt"
NOT_BUILDABLE_HERE = {"pycurl", "psycopg2"}


def runbook_dockerfile() -> str:
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    return textwrap.dedent(re.search(r"```Dockerfile\n(.*?)```", text, re.S).group(1))


def pins(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return found


def test_the_runbook_installs_the_bundle_without_changing_the_chart_image(tmp_path):
    if not PINS.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{PINS} is missing: CI must provide the z2jh chart's hub image pins")
        pytest.skip(f"{PINS} (the z2jh hub image's pins) is absent in this checkout")
    dockerfile = runbook_dockerfile()
    assert re.search(r"^FROM quay\.io/jupyterhub/k8s-hub:4\.4\.0$", dockerfile, re.M)
    package_arg = re.search(r'^ARG CIVIS_PACKAGE="(.*)"$', dockerfile, re.M).group(1)
    assert package_arg.startswith("jupyterhub-civis[kubernetes]==")
    run = re.search(r"^RUN (.*)$", dockerfile, re.M).group(1)

    image_pins = pins(PINS.read_text())
    assert image_pins["jupyterhub"] == "5.5.0" and image_pins["jupyterhub-kubespawner"] == "7.0.0"
    venv = tmp_path / "k8s-hub"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    wanted = [f"{n}=={v}" for n, v in image_pins.items() if n not in NOT_BUILDABLE_HERE]
    from jupyterhub_civis.spawner.venv_builder import _find_uv

    subprocess.run(  # uv: the image's own packages, fast (the runbook's command uses pip)
        [_find_uv(), "pip", "install", "--quiet", "--python", str(python), *wanted],
        check=True,
        env={**os.environ, "VIRTUAL_ENV": ""},
    )
    before = pins(subprocess.run([python, "-m", "pip", "freeze"], check=True,
                                 capture_output=True, text=True).stdout)
    image_freeze = tmp_path / "image-pins.txt"
    image_freeze.write_text("".join(f"{n}=={v}\n" for n, v in before.items()))
    subprocess.run(  # the bundle's own dependencies, from uv's cache, under the image's pins
        [_find_uv(), "pip", "install", "--quiet", "--python", str(python),
         "--constraint", str(image_freeze), f"{ROOT}[kubernetes]"],
        check=True,
        env={**os.environ, "VIRTUAL_ENV": ""},
    )
    subprocess.run([_find_uv(), "pip", "uninstall", "--quiet", "--python", str(python),
                    "jupyterhub-civis"], check=True, env={**os.environ, "VIRTUAL_ENV": ""})

    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
           "CIVIS_PACKAGE": f"{ROOT}[kubernetes]", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(["bash", "-c", run], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, f"$ {run}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"

    after = pins(subprocess.run([python, "-m", "pip", "freeze"], check=True,
                                capture_output=True, text=True).stdout)
    changed = {n: (v, after.get(n)) for n, v in before.items() if after.get(n) != v}
    assert changed == {}, changed
    assert after["jupyterhub"] == "5.5.0" and after["jupyterhub-kubespawner"] == "7.0.0"
    installed = subprocess.run([python, "-m", "pip", "show", "jupyterhub-civis"],
                               capture_output=True, text=True)
    assert installed.returncode == 0 and "Name: jupyterhub-civis" in installed.stdout

    load = """
import sys, yaml
from traitlets.config import Config
from jupyterhub.app import JupyterHub
from jupyterhub_civis.spawner.kube import CivisKubeSpawner
values = yaml.safe_load(open(sys.argv[1]))
c = Config(values["hub"]["config"])
hub = JupyterHub(config=c)
assert hub.spawner_class is CivisKubeSpawner, hub.spawner_class
print(CivisKubeSpawner.check_config(c).names())
"""
    loaded = subprocess.run([python, "-c", load, str(ROOT / "helm-values" / "values.yaml")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.strip() == "['python', 'scipy']"
    assert shlex.split(run)[:2] == ["pip", "freeze"]  # the constraints are the image's own
