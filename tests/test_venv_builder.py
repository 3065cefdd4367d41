"""The layered environment builder against real uv, a real package index and real venvs."""

from __future__ import annotations

import asyncio
import json
import socket
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


@pytest.fixture
def stalled_index(monkeypatch):
    """A package index that accepts connections and never answers: a build stuck on it."""
    server = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{server.getsockname()[1]}/simple"
    for name in ("UV_DEFAULT_INDEX", "UV_INDEX_URL"):
        monkeypatch.setenv(name, url)
    monkeypatch.setenv("UV_NO_CACHE", "1")
    yield url
    server.close()


async def test_a_timed_out_build_is_killed_and_removed(tmp_path, stalled_index):
    builder = LayeredVenvBuilder(str(tmp_path), timeout=2)
    missing = f"civis-stalled-{uuid.uuid4().hex[:8]}"  # not in the base: the index is asked
    with pytest.raises(BuildError, match="took longer than 2 s and was stopped"):
        await builder.ensure(BASE, [missing])
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
