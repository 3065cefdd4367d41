"""The local backend inside a real JupyterHub, driven through the REST API."""

from __future__ import annotations

import concurrent.futures
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from civis_test_support import (
    TEST_TOKEN,
    login,
    processes_under,
    run_code,
    start_hub,
    stop_hub,
    wait_for,
)

pytestmark = pytest.mark.hub

PROBE = """
import importlib.util, json, os, sys
print(json.dumps({
    "prefix": sys.prefix,
    "environment": os.environ.get("CIVIS_ENVIRONMENT"),
    "environment_id": os.environ.get("CIVIS_ENVIRONMENT_ID"),
    "modules": {m: importlib.util.find_spec(m) is not None for m in ("tabulate", "humanize")},
}))
"""


def probe(hub, user, server) -> dict:
    return json.loads(run_code(hub, user, server, PROBE).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def two_servers(hub):
    """One user, two named servers with different environments, started concurrently."""
    user = hub.create_user("two")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # both requests in flight at once
        f1 = pool.submit(hub.start, user, "plain", {"environment": "python"})
        f2 = pool.submit(
            hub.start, user, "extra", {"environment": "python-tabulate", "packages": ["humanize"]}
        )
        r1, r2 = f1.result(), f2.result()
    assert r1.status_code in (201, 202), r1.text
    assert r2.status_code in (201, 202), r2.text
    hub.wait_ready(user, "plain")
    hub.wait_ready(user, "extra")
    return user


def test_each_server_runs_its_own_environment(hub, two_servers):
    plain = probe(hub, two_servers, "plain")
    extra = probe(hub, two_servers, "extra")

    assert plain["environment"] == "python"
    assert Path(plain["prefix"]).resolve() == Path(sys.prefix).resolve()
    assert plain["modules"] == {"tabulate": False, "humanize": False}

    assert extra["environment"] == "python-tabulate"
    assert Path(extra["prefix"]).parent == hub.state_dir / "environments"
    assert Path(extra["prefix"]).name == extra["environment_id"]
    assert extra["modules"] == {"tabulate": True, "humanize": True}


def test_restart_without_options_keeps_the_environment(hub, two_servers):
    user = two_servers
    before = probe(hub, user, "extra")
    hub.stop(user, "extra")

    hub.start_and_wait(user, "extra")  # no body at all
    assert probe(hub, user, "extra")["environment_id"] == before["environment_id"]
    hub.stop(user, "extra")

    hub.start_and_wait(user, "extra", {})  # an empty object, as JupyterHub 5 sends it
    after = probe(hub, user, "extra")
    assert after["environment"] == "python-tabulate"
    assert after["environment_id"] == before["environment_id"]
    model = hub.server(user, "extra")
    assert model["user_options"] == {"environment": "python-tabulate", "packages": ["humanize"]}


def test_saved_notebook_records_its_environment(hub, two_servers):
    user = two_servers
    base = f"{hub.url}/user/{user}/extra/api/contents"
    headers = {"Authorization": f"token {TEST_TOKEN}"}
    notebook = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    r = requests.put(
        f"{base}/analysis.ipynb",
        headers=headers,
        json={"type": "notebook", "format": "json", "content": notebook},
        timeout=60,
    )
    assert r.status_code in (200, 201), r.text
    saved = requests.get(f"{base}/analysis.ipynb", headers=headers, timeout=60).json()
    recorded = saved["content"]["metadata"]["jupyterhub_civis"]["environment"]
    assert recorded["name"] == "python-tabulate"
    assert recorded["packages"] == ["humanize", "tabulate==0.9.0"]
    assert recorded["id"] == probe(hub, user, "extra")["environment_id"]


def test_custom_image_is_rejected_without_an_allow_list(hub):
    user = hub.create_user("image")
    r = hub.start(user, "nb", {"environment": "python", "image": "docker.io/library/python:3.11"})
    assert r.status_code == 400
    assert r.json()["message"].startswith("image: custom images are disabled")


HOSTILE = [
    ({"cmd": ["/bin/sh", "-c", "id"]}, "cmd"),
    ({"environment": "python", "env": {"LD_PRELOAD": "/tmp/x.so"}}, "env"),
    ({"environment": 5}, "environment"),
    ({"environment": ["python"]}, "environment"),
    ({"environment": "x" * 100_000}, "environment"),
    ({"environment": "../python"}, "environment"),
    ({"environment": "python\u0000"}, "environment"),
    ({"image": {"name": "x"}}, "image"),
    ({"packages": "tabulate"}, "packages"),
    ({"packages": [1]}, "packages[0]"),
    ({"packages": ["tabulate", "x" * 5000]}, "packages[1]"),
    ({"packages": ["../../etc/passwd"]}, "packages[0]"),
    ({"packages": ["-e git+https://example.invalid/x.git"]}, "packages[0]"),
    ({"packages": ["--index-url=https://example.invalid"]}, "packages[0]"),
    ({"packages": ["evil @ file:///etc/passwd"]}, "packages[0]"),
    ({"packages": ["tabulate; os.system('id')"]}, "packages[0]"),
    ({"packages": ["tabulate"] * 31}, "packages"),
]


@pytest.mark.parametrize(("options", "field"), HOSTILE, ids=[f for _, f in HOSTILE])
def test_hostile_options_get_400_naming_the_field(hub, options, field):
    user = hub.create_user("hostile")
    r = hub.start(user, "nb", options)
    assert r.status_code == 400, r.text
    message = r.json()["message"]
    assert message.startswith(f"{field}:"), message
    assert len(message) < 600
    model = hub.server(user, "nb")
    assert model is None or (not model["ready"] and not model["pending"])


@pytest.mark.parametrize("name", ["..", "a b", "x%2Fy", "..%2F..%2Fetc", "a" * 300])
def test_path_tricks_in_server_names_stay_inside_the_servers_folder(hub, name):
    from jupyterhub_civis.spawner.names import safe_name

    user = hub.create_user("names")
    r = hub.start(user, name, {"environment": "python"})
    # JupyterHub refuses some of these itself (6: not a safe slug; "/" in the name);
    # what it accepts runs in a folder named by the safe-name rule
    assert r.status_code in (201, 202, 400, 404), r.text
    if r.status_code in (201, 202):
        started = [n for n in hub.api("GET", f"/users/{user}").json()["servers"]]
        (server,) = started
        hub.wait_ready(user, server)
        hub.stop(user, requests.utils.quote(server, safe=""), remove=True)
        assert [p.name for p in (hub.state_dir / "servers" / user).iterdir()] == [
            safe_name(server)
        ]
    assert not (hub.state_dir / "servers" / "etc").exists()
    assert not (hub.state_dir / "etc").exists()


def test_rejected_options_keep_the_remembered_choice(hub, two_servers):
    user = two_servers
    hub.stop(user, "plain")
    r = hub.start(user, "plain", {"environment": "no-such-env"})
    assert r.status_code == 400
    assert hub.server(user, "plain")["user_options"] == {"environment": "python"}
    hub.start_and_wait(user, "plain")
    assert probe(hub, user, "plain")["environment"] == "python"


def test_failing_package_build_reports_the_installer_error_and_leaves_nothing(hub):
    user = hub.create_user("broken")
    missing = f"civis-no-such-package-{uuid.uuid4().hex[:8]}"
    r = hub.start(user, "nb", {"environment": "python", "packages": [missing]})

    if r.status_code == 202:  # slower than slow_spawn_timeout: the failure arrives as progress
        wait_for(lambda: not hub.server(user, "nb")["pending"], timeout=120, message="spawn end")
        events = hub.api("GET", f"/users/{user}/servers/nb/progress").text
        message = events
    else:
        assert r.status_code == 400, r.text
        message = r.json()["message"]
    assert missing in message
    assert re.search(r"not found in the package registry|No solution found", message), message

    environments = hub.state_dir / "environments"
    leftovers = [p.name for p in environments.iterdir()] if environments.exists() else []
    assert not [n for n in leftovers if n.startswith(".build-")], leftovers
    built = [
        json.loads((environments / n / "civis-environment.json").read_text()) for n in leftovers
    ]
    assert not [b for b in built if any(missing in req for req in b["requirements"])]
    assert not [p for p in processes_under(environments) if "uv" in p]
    model = hub.server(user, "nb")
    if r.status_code == 400:  # refused in answer to the request that created it: no entry stays
        assert model is None, model
    else:  # answered 202 first: the entry stays, so the spawn page can show the failure
        assert not model["ready"] and not model["pending"]


def test_removed_environment_asks_the_user_to_choose_again(tmp_path):
    extra_env = (
        "c.CivisSpawner.environments = c.CivisSpawner.environments + "
        "[{'name': 'retired', 'display_name': 'Retired'}]\n"
    )
    first = start_hub(tmp_path, extra_env)
    try:
        user = first.create_user("retire")
        first.start_and_wait(user, "old", {"environment": "retired"})
        first.stop(user, "old")
    finally:
        stop_hub(first)

    second = start_hub(tmp_path)  # same database, catalog without 'retired'
    try:
        r = second.start(user, "old")
        assert r.status_code == 400
        message = r.json()["message"]
        assert "'retired'" in message and "choose another environment" in message
        assert second.server(user, "old")["user_options"] == {"environment": "retired"}

        session = login(second, user)
        page = session.get(f"{second.url}/hub/spawn/{user}/old", timeout=30)
        assert page.status_code == 200
        assert "no longer offered" in page.text
        assert not re.search(r"\schecked[\s>]", page.text)
        r = second.start(user, "old", {"environment": "python"})
        assert r.status_code in (201, 202)
        second.wait_ready(user, "old")
    finally:
        stop_hub(second)
    wait_for(lambda: not processes_under(tmp_path), timeout=30, message="servers to exit")


def test_spawn_progress_shows_environment_steps_and_live_build_lines(hub):
    user = hub.create_user("progress")
    response, events = hub.start_and_follow(user, "built", {"packages": ["tabulate==0.8.10"]})
    assert response.status_code in (201, 202), response.text

    messages = [e.get("message", "") for e in events]
    assert messages[0] == "Server requested"
    assert any(m.startswith("Resolving environment") for m in messages), messages
    assert "Installing tabulate==0.8.10" in messages, messages
    assert any("Installed 1 package" in m for m in messages), messages  # uv's own line
    assert any(m.endswith("starting the server") for m in messages), messages
    assert events[-1].get("ready") is True, events[-1]
    progress = [e["progress"] for e in events if "progress" in e]
    assert progress == sorted(progress), progress


# ----- issue 13: names, phantom servers, the remembered choice, visible environments -------

ODD_NAMES = ["$p~c|a! ch@rs", "hash#?question"]


def _add_servers_to_database(db_file, user: str, names) -> None:
    """Named servers as a hub that accepted their names left them (JupyterHub 5 did)."""
    from jupyterhub import orm

    session = orm.new_session_factory(f"sqlite:///{db_file}")()
    orm_user = session.query(orm.User).filter_by(name=user).one()
    for name in names:
        session.add(orm.Spawner(user=orm_user, name=name))
    session.commit()
    session.close()


def test_any_server_name_jupyterhub_accepts_works(tmp_path):
    from jupyterhub_civis.spawner.names import safe_name

    # JupyterHub 6 refuses such names for new servers; those created before it start
    # when the operator allows it, so the names come from the database on both lines
    extra = "c.JupyterHub.allow_invalid_named_server_start = True\n"
    hub = start_hub(tmp_path, extra)
    user = hub.create_user("names")
    stop_hub(hub)
    _add_servers_to_database(tmp_path / "jupyterhub.sqlite", user, ODD_NAMES)
    hub = start_hub(tmp_path, extra)
    try:
        for name in ODD_NAMES:
            escaped = requests.utils.quote(name, safe="")
            r = hub.api("POST", f"/users/{user}/servers/{escaped}", json={"environment": "python"})
            assert r.status_code in (201, 202), r.text
            model = hub.wait_ready(user, name)
            in_url = model["url"].rstrip("/").rsplit("/", 1)[1]  # as the hub escapes it for the proxy
            out = run_code(hub, user, in_url, "import os; print(os.getcwd())")
            assert out.strip() == str(hub.state_dir / "servers" / user / safe_name(name))
            hub.stop(user, escaped)
        assert sorted(p.name for p in (hub.state_dir / "servers" / user).iterdir()) == sorted(
            safe_name(n) for n in ODD_NAMES
        )
    finally:
        stop_hub(hub)
    wait_for(lambda: not processes_under(tmp_path), timeout=30, message="servers to exit")


def test_refused_requests_leave_no_server_and_never_stop_the_hub(tmp_path):
    extra = (
        "c.JupyterHub.named_server_limit_per_user = 2\n"
        "c.Spawner.consecutive_failure_limit = 3\n"  # JupyterHub exits after 3 failed spawns
    )
    hub = start_hub(tmp_path, extra)
    try:
        user = hub.create_user("phantom")
        bad = [
            {"environment": "no-such-environment"},
            {"packages": ["not a requirement"]},
            {"cmd": ["/bin/sh"]},
            {"environment": "python", "image": "evil/miner:1"},
            {"packages": [f"civis-no-such-package-{uuid.uuid4().hex[:8]}==1.0"]},
        ]
        for index, options in enumerate(bad):
            r = hub.start(user, f"new-{index}", options)
            assert r.status_code == 400, r.text
        servers = hub.api("GET", f"/users/{user}?include_stopped_servers=1").json()["servers"]
        assert [name for name in servers if name] == []  # (the default server is not named)
        assert hub.process.poll() is None  # refusals are not failed spawns
        for name in ("first", "second"):  # the limit is all there
            hub.start_and_wait(user, name, {"environment": "python"})
        log = hub.log()
        assert "Refused to start" in log
        assert "Aborting due to" not in log
    finally:
        stop_hub(hub)
    wait_for(lambda: not processes_under(tmp_path), timeout=30, message="servers to exit")


def test_bad_input_is_one_warning_line_not_an_error(hub):
    user = hub.create_user("quiet")
    start = len(hub.log())
    r = hub.start(user, "nb", {"packages": ["tabulate", "numpy >>> 1"]})
    assert r.status_code == 400
    assert r.json()["message"].startswith("packages[1]: not a valid requirement (Expected")
    assert "^" not in r.json()["message"]  # no caret line under the requirement
    wait_for(lambda: "Refused to start" in hub.log()[start:], timeout=10, message="the warning")
    lines = [line for line in hub.log()[start:].splitlines() if user in line]
    refusals = [line for line in lines if "Refused to start" in line]
    assert len(refusals) == 1 and refusals[0].startswith("[W "), lines
    assert not [line for line in lines if line.startswith("[E ")], lines
    assert "Traceback" not in hub.log()[start:]


def test_a_failed_install_keeps_the_previous_choice(hub):
    user = hub.create_user("keep")
    hub.start_and_wait(user, "work", {"environment": "python-tabulate"})
    hub.stop(user, "work")
    r = hub.start(user, "work", {"environment": "python", "packages": ["nonexistent==1.0"]})
    if r.status_code == 202:
        wait_for(lambda: not hub.server(user, "work")["pending"], timeout=120, message="spawn end")
    else:
        assert r.status_code == 400, r.text
        assert "nonexistent" in r.json()["message"]
    assert hub.server(user, "work")["user_options"] == {"environment": "python-tabulate"}
    hub.start_and_wait(user, "work")  # no body: the previous environment
    assert probe(hub, user, "work")["environment"] == "python-tabulate"


def test_servers_say_which_environment_they_run(hub, two_servers):
    user = two_servers
    base = f"{hub.url}/user/{user}/extra/api"
    specs = requests.get(
        f"{base}/kernelspecs", headers={"Authorization": f"token {TEST_TOKEN}"}, timeout=60
    ).json()
    names = [k["spec"]["display_name"] for k in specs["kernelspecs"].values()]
    assert names and all(n.endswith(" · python-tabulate + humanize") for n in names), names

    # ps shows the server's user, name and environment (also for a preloaded start)
    for server, title in (("extra", "[python-tabulate + humanize]"), ("plain", "[python]")):
        parent = int(run_code(hub, user, server, "import os; print(os.getppid())"))
        cmdline = Path(f"/proc/{parent}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        assert cmdline.strip() == f"jupyterhub-singleuser {user}/{server} {title}", cmdline


def test_the_ready_message_names_the_extra_packages(hub):
    user = hub.create_user("ready")
    response, events = hub.start_and_follow(
        user, "nb", {"environment": "python-tabulate", "packages": ["humanize"]}
    )
    assert response.status_code in (201, 202), response.text
    ready = [e["message"] for e in events if "ready in" in e.get("message", "")]
    assert len(ready) == 1 and ready[0].startswith("Environment Python"), ready
    assert "+ tabulate with humanize ready in" in ready[0], ready


def test_the_readme_curl_example_works_on_the_demo_as_written(hub):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    command = re.search(r"```bash\n(curl -X POST .*?)\n```", readme, re.S).group(1)
    url = re.search(r"http://127\.0\.0\.1:8000(/hub/api/users/(\w+)/servers/(\w+))", command)
    path, user, server = url.groups()
    r = hub.api("POST", f"/users/{user}")
    assert r.status_code in (201, 409), r.text
    token = hub.user_token(user)
    result = subprocess.run(
        ["bash", "-c", command.replace("http://127.0.0.1:8000", hub.url) + " -w '%{http_code}'"],
        env={"PATH": "/usr/bin:/bin", "TOKEN": token},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.stdout.strip()[-3:] in ("201", "202"), result.stdout + result.stderr
    hub.wait_ready(user, server)
    assert hub.server(user, server)["user_options"] == json.loads(
        re.search(r"-d '(.*)'", command).group(1)
    )
    assert path.endswith(f"/{server}")
    hub.stop(user, server, remove=True)
