"""The layered environment builder against real uv, a real package index and real venvs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid

import pytest
from civis_test_support import processes_under

from jupyterhub_civis.spawner.venv_builder import BuildError, LayeredVenvBuilder, interpreter

BASE = sys.prefix


def run_in(prefix, code: str) -> str:
    return subprocess.run(
        [interpreter(str(prefix)), "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


async def test_builds_once_and_layers_on_the_base(tmp_path):
    builder = LayeredVenvBuilder(str(tmp_path))
    lines = []
    env_id, prefix = await builder.ensure(BASE, ["tabulate==0.9.0"], on_line=lines.append)

    assert prefix == tmp_path / env_id
    assert any("tabulate" in line for line in lines)
    # the package is in the layer, the base's packages (jupyterhub) come through the link
    assert run_in(prefix, "import tabulate, jupyterhub, sys; print(sys.prefix)") == str(prefix)
    assert "tabulate" not in run_in(
        BASE, "import importlib.util as u; print(u.find_spec('tabulate'))"
    )
    record = json.loads((prefix / "civis-environment.json").read_text())
    assert record["requirements"] == ["tabulate==0.9.0"]

    mtime = prefix.stat().st_mtime_ns
    again_lines = []
    assert await builder.ensure(BASE, ["tabulate==0.9.0"], on_line=again_lines.append) == (
        env_id,
        prefix,
    )
    assert again_lines == [] and prefix.stat().st_mtime_ns == mtime


async def test_concurrent_identical_builds_run_once(tmp_path):
    builder = LayeredVenvBuilder(str(tmp_path))
    starts = []
    real_run = builder._run

    async def counting_run(cmd, sink):
        if cmd[1:3] == ["pip", "install"]:
            starts.append(cmd)
        return await real_run(cmd, sink)

    builder._run = counting_run
    results = await asyncio.gather(*(builder.ensure(BASE, ["humanize"]) for _ in range(5)))
    assert len({r for r in results}) == 1
    assert len(starts) == 1
    assert [p.name for p in tmp_path.iterdir()] == [results[0][0]]


async def test_a_failed_build_leaves_nothing_behind(tmp_path):
    builder = LayeredVenvBuilder(str(tmp_path))
    missing = f"civis-no-such-package-{uuid.uuid4().hex[:8]}"
    with pytest.raises(BuildError) as e:
        await builder.ensure(BASE, [missing])
    assert missing in str(e.value)
    assert list(tmp_path.iterdir()) == []


async def test_a_timed_out_build_is_killed_and_removed(tmp_path):
    builder = LayeredVenvBuilder(str(tmp_path), timeout=0.5)
    slow = ["pandas==2.2.3", "numpy==2.1.3", "pyarrow==18.1.0"]  # cannot install in 0.5 s
    with pytest.raises(BuildError, match="took longer than 0 s|took longer than 1 s"):
        await builder.ensure(BASE, slow)
    assert list(tmp_path.iterdir()) == []
    assert processes_under(tmp_path) == []


async def test_a_changed_base_gets_a_new_environment_id(tmp_path):
    base = tmp_path / "base"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base)], check=True)
    builder = LayeredVenvBuilder(str(tmp_path / "envs"))
    before = builder.environment_id(str(base), ["humanize"])
    site = run_in(base, "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    (tmp_path / "base" / site.split(str(base) + "/", 1)[1] / "extra-1.0.dist-info").mkdir(
        parents=True
    )
    assert builder.environment_id(str(base), ["humanize"]) != before


def _own_distributions(prefix) -> set[str]:
    site = run_in(prefix, "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    from pathlib import Path

    return {p.name.split("-")[0].lower() for p in Path(site).glob("*.dist-info")}


async def test_a_layer_holds_only_what_its_base_lacks(tmp_path):
    from jupyterhub_civis.spawner.venv_builder import base_distributions

    base = base_distributions(BASE)
    assert base["jinja2"] and base["markupsafe"]  # the hub's environment has them
    builder = LayeredVenvBuilder(str(tmp_path))

    lines = []
    _, prefix = await builder.ensure(BASE, [f"jinja2=={base['jinja2']}"], on_line=lines.append)
    assert _own_distributions(prefix) == set()  # nothing re-downloaded, nothing duplicated
    assert any("already in the base environment" in line for line in lines), lines

    # a new package whose dependency (requests) the base has: only the new package lands
    assert base["requests"]
    _, prefix = await builder.ensure(BASE, ["requests-toolbelt==1.0.0"])
    assert _own_distributions(prefix) == {"requests_toolbelt"}
    assert run_in(prefix, "import requests_toolbelt, requests; print(requests.__file__)").startswith(
        run_in(BASE, "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    )

    # naming another version of a base package puts that version in the layer, first on the path
    _, prefix = await builder.ensure(BASE, ["markupsafe==2.1.5"])
    assert _own_distributions(prefix) == {"markupsafe"}
    assert run_in(prefix, "import markupsafe; print(markupsafe.__version__)") == "2.1.5"


def test_layer_plan_pins_the_base_and_drops_what_it_satisfies():
    from jupyterhub_civis.spawner.venv_builder import layer_plan, missing_from_base

    base = {"jinja2": "3.1.6", "markupsafe": "3.0.3", "requests": "2.32.0"}
    wanted, pins = layer_plan(["Jinja2>=3", "requests[socks]", "markupsafe<3", "tabulate"], base)
    assert wanted == ["requests[socks]", "markupsafe<3", "tabulate"]
    assert pins == ["jinja2==3.1.6"]
    resolved = ["jinja2==3.1.6", "markupsafe==2.1.5", "pysocks==1.7.1", "requests==2.32.0",
                "tabulate==0.9.0  # via -r requirements.in"]
    assert missing_from_base(resolved, base) == [
        "markupsafe==2.1.5", "pysocks==1.7.1", "tabulate==0.9.0"]
