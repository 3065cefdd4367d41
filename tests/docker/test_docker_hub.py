"""CivisDockerSpawner in a real JupyterHub, on the real Docker engine and registry."""

from __future__ import annotations

import concurrent.futures
import json

import pytest
import requests
from civis_test_support import TEST_TOKEN, wait_for
from docker_support import (
    BASE_IMAGE,
    REGISTRY,
    builds,
    environment_tag,
    escaped,
    exec_in,
    forget_image,
    registry_has,
    user_containers,
)

pytestmark = [pytest.mark.docker, pytest.mark.hub]

AUTH = {"Authorization": f"token {TEST_TOKEN}"}


def new_user(hub, prefix):
    user = hub.create_user(prefix)
    hub.users.append(user)
    return user


def container_of(docker_api, user, server) -> dict:
    [found] = [c for c in user_containers(docker_api, user) if c["Names"][0].endswith(f"--{server}")]
    return docker_api.inspect_container(found["Id"])


def test_two_servers_two_environments_two_containers(docker_hub, docker_api):
    hub = docker_hub
    user = new_user(hub, "two")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        plain = pool.submit(hub.start, user, "plain", {"environment": "base"})
        extra = pool.submit(hub.start, user, "extra", {"environment": "tabulate"})
        assert plain.result().status_code in (201, 202), plain.result().text
        assert extra.result().status_code in (201, 202), extra.result().text
    hub.wait_ready(user, "plain")
    hub.wait_ready(user, "extra")

    plain_c, extra_c = container_of(docker_api, user, "plain"), container_of(docker_api, user, "extra")
    assert plain_c["Id"] != extra_c["Id"]
    assert exec_in(docker_api, extra_c["Id"], ["python", "-c", "import tabulate"])[0] == 0
    code, out = exec_in(docker_api, plain_c["Id"], ["python", "-c", "import tabulate"])
    assert code != 0 and "ModuleNotFoundError" in out
    assert extra_c["Config"]["Image"].startswith(f"{REGISTRY}/civis/environment:")
    assert plain_c["Config"]["Image"] == BASE_IMAGE

    for c in (plain_c, extra_c):
        host = c["HostConfig"]
        assert exec_in(docker_api, c["Id"], ["id", "-u"])[1].strip() == "1000"
        assert host["Privileged"] is False
        assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
        assert "no-new-privileges" in host["SecurityOpt"]
        # the only mount: the server's own named volume
        [mount] = c["Mounts"]
        assert mount["Type"] == "volume" and mount["Destination"] == "/home/jovyan"
        assert escaped(user) in mount["Name"]
    assert plain_c["HostConfig"]["Memory"] == 700 * 1024 * 1024
    assert plain_c["HostConfig"]["NanoCpus"] or plain_c["HostConfig"]["CpuQuota"] == 150_000

    # what the server runs is what its notebooks record: the image's digest
    env = dict(line.split("=", 1) for line in extra_c["Config"]["Env"])
    record = json.loads(env["CIVIS_ENVIRONMENT_JSON"])
    local = docker_api.inspect_image(extra_c["Image"])
    assert record["image_digest"] in local["RepoDigests"]
    assert record["image_id"] == extra_c["Image"]
    nb = {"type": "notebook", "content": {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}}
    url = f"{hub.url}/user/{user}/extra/api/contents/recorded.ipynb"
    assert requests.put(url, json=nb, headers=AUTH, timeout=60).status_code in (200, 201)
    saved = requests.get(url, headers=AUTH, timeout=60).json()["content"]["metadata"]
    assert saved["jupyterhub_civis"]["environment"]["image_digest"] == record["image_digest"]


def test_same_environment_twice_builds_once(docker_hub, docker_api):
    hub = docker_hub
    user = new_user(hub, "twice")
    forget_image(docker_api, environment_tag(docker_api, ["tabulate==0.8.10"]))  # a first build
    before = builds(hub)
    options = {"environment": "base", "packages": ["tabulate==0.8.10"]}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda s: hub.start(user, s, options), ["a", "b"]))
    assert all(r.status_code in (201, 202) for r in answers), [r.text for r in answers]
    hub.wait_ready(user, "a")
    hub.wait_ready(user, "b")
    assert builds(hub) == before + 1
    response, events = hub.start_and_follow(user, "c", options)
    assert response.status_code in (201, 202), response.text
    hub.wait_ready(user, "c")
    assert builds(hub) == before + 1  # the third: a registry lookup
    messages = [e.get("message", "") for e in events]
    assert any("is in the registry (built before)" in m for m in messages), messages
    assert any("already present" in m for m in messages), messages
    images = {container_of(docker_api, user, s)["Image"] for s in "abc"}
    assert len(images) == 1


def test_failing_build_is_400_and_leaves_no_tag(docker_hub, docker_api):
    from jupyterhub_civis.spawner.docker_builder import DockerImageBuilder
    from jupyterhub_civis.spawner.image_builder import image_tag

    hub = docker_hub
    user = new_user(hub, "fail")
    failed = builds(hub, "failed")
    r = hub.start(user, "broken", {"environment": "base", "packages": ["civis-no-such-package==1.0"]})
    assert r.status_code == 400, r.text
    assert "civis-no-such-package" in r.json()["message"]
    assert builds(hub, "failed") == failed + 1
    base_ref = f"{BASE_IMAGE.rsplit(':', 1)[0]}@" + docker_api.inspect_distribution(BASE_IMAGE)["Descriptor"]["digest"]
    tag = image_tag(REGISTRY, DockerImageBuilder().image_prefix, base_ref, ["civis-no-such-package==1.0"])
    assert not registry_has(tag)
    assert not [i for i in docker_api.images() if tag in (i.get("RepoTags") or [])]
    assert not user_containers(docker_api, user)
    # nothing left in the hub either: the refused first start left no server entry
    assert hub.server(user, "broken") is None


@pytest.mark.parametrize(
    "options, field",
    [
        ({"environment": "base", "privileged": True}, "privileged"),
        ({"environment": "base", "image": "docker.io/library/alpine:3"}, "image"),
        ({"image": f"{REGISTRY}/civis/notebook:latest;rm"}, "image"),
        ({"environment": "base", "packages": ["--index-url=http://evil.example/simple"]}, "packages"),
        ({"environment": "base", "packages": ["pkg @ https://evil.example/pkg.whl"]}, "packages"),
        ({"environment": "base", "packages": ["-r /etc/passwd"]}, "packages"),
        ({"environment": "base", "packages": ["tabulate; os_name == 'posix' --pre"]}, "packages"),
        ({"environment": "nope"}, "environment"),
    ],
)
def test_hostile_options_refused_before_any_build(docker_hub, docker_api, options, field):
    hub = docker_hub
    user = new_user(hub, "hostile")
    before = builds(hub) + builds(hub, "failed")
    r = hub.start(user, "x", options)
    assert r.status_code == 400, r.text
    assert field in r.json()["message"]
    assert builds(hub) + builds(hub, "failed") == before
    assert not user_containers(docker_api, user)


def test_hub_restart_keeps_containers_and_their_files(tmp_path, docker_api):
    from civis_test_support import HubRun, free_port
    from docker_support import DOCKER_CONFIG, remove_user_objects

    # running servers keep talking to the hub's API where it was: same port after the restart
    run = HubRun(
        tmp_path / "hub",
        DOCKER_CONFIG + f"\nc.JupyterHub.cleanup_servers = False\nc.JupyterHub.hub_port = {free_port()}\n",
    )
    hub = run.start()
    user = hub.create_user("restart")
    try:
        hub.start_and_wait(user, "keep", {"environment": "base"})
        before = container_of(docker_api, user, "keep")
        url = f"{hub.url}/user/{user}/keep/api/contents/kept.txt"
        r = requests.put(url, json={"type": "file", "format": "text", "content": "still here"},
                         headers=AUTH, timeout=60)
        assert r.status_code in (200, 201), r.text
        run.stop()
        assert docker_api.inspect_container(before["Id"])["State"]["Running"]
        hub = run.start()
        assert hub.server(user, "keep")["ready"]
        url = f"{hub.url}/user/{user}/keep/api/contents/kept.txt"  # the proxy's new port
        wait_for(lambda: requests.get(url, headers=AUTH, timeout=10).status_code == 200,
                 timeout=60, message="the server through the restarted hub")
        assert requests.get(url, headers=AUTH, timeout=10).json()["content"] == "still here"
        assert container_of(docker_api, user, "keep")["Id"] == before["Id"]
        # a stop removes the container; the next start finds the files in the volume
        hub.stop(user, "keep")
        wait_for(lambda: not user_containers(docker_api, user), timeout=60,
                 message="the stopped server's container to be removed")
        hub.start_and_wait(user, "keep", {"environment": "base"})
        assert requests.get(url, headers=AUTH, timeout=10).json()["content"] == "still here"
        volume = container_of(docker_api, user, "keep")["Mounts"][0]["Name"]
        # removing the server removes its files: no orphaned volume
        hub.stop(user, "keep", remove=True)
        wait_for(lambda: volume not in [v["Name"] for v in docker_api.volumes()["Volumes"] or []],
                 timeout=60, message="the removed server's volume to go")
    finally:
        run.stop() if run.hub.process.poll() is None else None
        remove_user_objects(docker_api, user)


def test_catalog_images_are_prepulled_at_hub_start(tmp_path, docker_api):
    """check_config at the end of the config starts pulling and building the catalog's
    images: the hub builds a catalog environment's image with no spawn asking for it."""
    from civis_test_support import HubRun
    from docker_support import DOCKER_CONFIG

    packages = ["tabulate==0.8.9"]
    config = DOCKER_CONFIG + f"""
c.CivisSpawner.environments = c.CivisSpawner.environments + [
    {{"name": "prepulled", "image": {BASE_IMAGE!r}, "packages": {packages!r}}}]
from jupyterhub_civis.spawner.docker_spawner import CivisDockerSpawner
CivisDockerSpawner.check_config(c)
"""
    tag = environment_tag(docker_api, packages)
    forget_image(docker_api, tag)  # an earlier run built it: this hub must build it again
    with HubRun(tmp_path / "hub", config) as hub:
        wait_for(lambda: "Pre-pulled the image of environment prepulled" in hub.log(),
                 timeout=240, message="the hub to pre-pull the catalog")
        assert registry_has(tag)
        assert docker_api.inspect_image(tag)["Id"]
        assert builds(hub) == 1


def test_a_server_pinned_by_digest_runs_exactly_that_image(docker_hub, docker_api):
    """What "open a copy" asks for (``image_digest``, docs/sharing.md): the environment's
    own image or an image the hub built, by digest, run as is; any other image refused."""
    hub = docker_hub
    user = new_user(hub, "pinned")
    base_ref = f"{BASE_IMAGE.rsplit(':', 1)[0]}@" + docker_api.inspect_distribution(BASE_IMAGE)["Descriptor"]["digest"]
    r = hub.start(user, "base", {"environment": "base", "image_digest": base_ref})
    assert r.status_code in (201, 202), r.text
    assert hub.start(user, "env", {"environment": "tabulate"}).status_code in (201, 202)
    hub.wait_ready(user, "base")
    hub.wait_ready(user, "env")
    assert container_of(docker_api, user, "base")["Config"]["Image"] == base_ref

    env = dict(line.split("=", 1) for line in container_of(docker_api, user, "env")["Config"]["Env"])
    built = json.loads(env["CIVIS_ENVIRONMENT_JSON"])["image_digest"]
    before = builds(hub)
    r = hub.start(user, "copy", {"environment": "tabulate", "image_digest": built})
    assert r.status_code in (201, 202), r.text
    hub.wait_ready(user, "copy")
    copy = container_of(docker_api, user, "copy")
    assert copy["Config"]["Image"] == built and builds(hub) == before  # run as is, not rebuilt
    assert exec_in(docker_api, copy["Id"], ["python", "-c", "import tabulate"])[0] == 0

    foreign = "docker.io/library/alpine@sha256:" + "a" * 64
    r = hub.start(user, "foreign", {"environment": "base", "image_digest": foreign})
    assert r.status_code == 400 and "image_digest" in r.json()["message"], r.text
    assert hub.server(user, "foreign") is None
    assert not [c for c in user_containers(docker_api, user) if c["Names"][0].endswith("--foreign")]
