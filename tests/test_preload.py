"""Preloaded server starts (``CivisLocalSpawner.preload_servers``) inside a real hub."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
from civis_test_support import (
    processes_under,
    require_tools,
    run_code,
    start_hub,
    stop_hub,
    wait_for,
)

pytestmark = pytest.mark.hub

PRELOAD = "c.CivisLocalSpawner.preload_servers = True\n"
ZYGOTE_MARK = "jupyterhub_civis.spawner.preload"

PROBE = """
import importlib.util, json, os, sys
print(json.dumps({
    "prefix": sys.prefix,
    "environment": os.environ.get("CIVIS_ENVIRONMENT"),
    "tabulate": importlib.util.find_spec("tabulate") is not None,
    "server_pid": os.getppid(),
}))
"""


def probe(hub, user, server) -> dict:
    return json.loads(run_code(hub, user, server, PROBE).strip().splitlines()[-1])


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def zygotes_of(hub_pid: int) -> list[int]:
    """Live zygotes (and anything forked from them) started by the hub ``hub_pid``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            line = cmdline(int(pid))
        except OSError:
            continue
        if ZYGOTE_MARK in line and f"--hub-pid {hub_pid} " in line:
            found.append(int(pid))
    return found


def assert_forked_by_zygote(hub, server_pid: int) -> int:
    zygote = parent_of(server_pid)
    assert zygote != hub.process.pid
    assert ZYGOTE_MARK in cmdline(zygote)
    assert parent_of(zygote) == hub.process.pid
    return zygote


@pytest.fixture
def preload_hub(tmp_path):
    require_tools()
    hub = start_hub(tmp_path, PRELOAD)
    yield hub
    stop_hub(hub)


def test_servers_fork_from_one_zygote_per_environment(tmp_path, preload_hub):
    hub = preload_hub
    user = hub.create_user("preload")
    hub.start_and_wait(user, "plain", {"environment": "python"})
    hub.start_and_wait(user, "extra", {"environment": "python-tabulate"})

    plain, extra = probe(hub, user, "plain"), probe(hub, user, "extra")
    assert plain["environment"] == "python" and not plain["tabulate"]
    assert Path(plain["prefix"]).resolve() == Path(sys.prefix).resolve()
    assert extra["environment"] == "python-tabulate" and extra["tabulate"]
    assert Path(extra["prefix"]).parent == tmp_path / "environments"
    plain_zygote = assert_forked_by_zygote(hub, plain["server_pid"])
    extra_zygote = assert_forked_by_zygote(hub, extra["server_pid"])
    assert plain_zygote != extra_zygote
    assert str(extra["prefix"]) in cmdline(extra_zygote).split()[0]

    # stop and start again: a new server from the same, still running zygote
    for server, first, zygote in (("plain", plain, plain_zygote), ("extra", extra, extra_zygote)):
        before = first["server_pid"]
        hub.stop(user, server)
        wait_for(lambda pid=before: not Path(f"/proc/{pid}").exists(), timeout=30, message="exit")
        hub.start_and_wait(user, server)
        again = probe(hub, user, server)
        assert again["server_pid"] != before
        assert again["environment"] == first["environment"]
        assert assert_forked_by_zygote(hub, again["server_pid"]) == zygote
    assert "starting it normally" not in hub.log()

    hub_pid = hub.process.pid
    stop_hub(hub)  # SIGINT, as Ctrl-C
    wait_for(
        lambda: not processes_under(tmp_path) and not zygotes_of(hub_pid),
        timeout=30,
        message="every server and zygote to exit",
    )


def test_start_falls_back_when_the_zygote_died(tmp_path, preload_hub):
    hub = preload_hub
    user = hub.create_user("fallback")
    hub.start_and_wait(user, "first", {"environment": "python"})
    zygote = assert_forked_by_zygote(hub, probe(hub, user, "first")["server_pid"])

    os.kill(zygote, signal.SIGKILL)
    hub.start_and_wait(user, "second", {"environment": "python"})
    second = probe(hub, user, "second")
    assert second["environment"] == "python"
    assert parent_of(second["server_pid"]) == hub.process.pid  # a normal Popen start
    assert "starting it normally" in hub.log()

    hub_pid = hub.process.pid
    stop_hub(hub)
    wait_for(
        lambda: not processes_under(tmp_path) and not zygotes_of(hub_pid),
        timeout=30,
        message="every server and zygote to exit",
    )
