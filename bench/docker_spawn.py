"""The Docker and built-image figures of bench/spawn.py (needs `make docker-env`).

- ``docker_prepulled_vs_bare``: a named server from a pre-pulled image through a real
  hub (CivisDockerSpawner) until its ``/api`` answers through the proxy, vs
  ``docker run`` of the same image running a bare ``jupyter server`` until ``/api``
  answers;
- ``rebuild_vs_build``: the second request for an environment image (a registry
  lookup) vs its first build (the tag deleted from the registry and the engine first);
- ``kube_start_vs_init_install``: on the Kubernetes emulator, with a kubelet running pods
  in Docker, a pod from the built image vs today's install-on-start init container,
  each through the hub until the server is ready. The environment is ``pandas``
  (``KUBE_PACKAGES``): a typical analysis dependency, installed at every pod start by
  the init container (an emptyDir: no home volume here), built once into the image.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "docker"))
from civis_test_support import TEST_TOKEN, free_port, start_hub, stop_hub, wait_for  # noqa: E402
from docker_support import (  # noqa: E402
    BASE_IMAGE,
    DOCKER_CONFIG,
    KUBE_NAMESPACE,
    REGISTRY,
    docker_client,
    kube_config,
    remove_user_objects,
)

AUTH = {"Authorization": f"token {TEST_TOKEN}"}
KUBE_PACKAGES = ("pandas==2.2.3",)


def _answers(url, headers=None) -> bool:
    try:
        return requests.get(url, headers=headers, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def bare_docker_run(client) -> float:
    port = free_port()
    started = time.perf_counter()
    container = client.create_container(
        BASE_IMAGE, ["jupyter", "server", "--ServerApp.ip=0.0.0.0", "--port=8888",
                     "--ServerApp.token=bench", "--no-browser"],
        ports=[8888], host_config=client.create_host_config(port_bindings={8888: ("127.0.0.1", port)}),
    )
    try:
        client.start(container["Id"])
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/api", {"Authorization": "token bench"}),
                 timeout=120, interval=0.02, message="bare jupyter server in docker")
        return time.perf_counter() - started
    finally:
        client.remove_container(container["Id"], force=True)


def hub_server(hub, user, server, options) -> float:
    started = time.perf_counter()
    r = hub.start(user, server, options)
    if r.status_code not in (201, 202):
        raise RuntimeError(f"{user}/{server}: {r.status_code} {r.text}")
    wait_for(lambda: _answers(f"{hub.url}/user/{user}/{server}/api", AUTH),
             timeout=300, interval=0.02, message=f"{user}/{server}")
    return time.perf_counter() - started


def docker_prepulled_vs_bare(tmp: Path, runs: int) -> tuple[float, float]:
    client = docker_client()
    hub = start_hub(tmp / "docker-hub", DOCKER_CONFIG)
    user = hub.create_user("bench")
    try:
        hub_server(hub, user, "warmup", {"environment": "base"})  # pre-pulled: the image is here
        hub.stop(user, "warmup", remove=True)
        bare, spawned = [], []
        for run in range(runs):
            bare.append(bare_docker_run(client))
            name = f"run{run}"
            spawned.append(hub_server(hub, user, name, {"environment": "base"}))
            hub.stop(user, name, remove=True)
            print(f"docker run {run + 1}: bare {bare[-1]:.2f} s, hub {spawned[-1]:.2f} s", flush=True)
    finally:
        stop_hub(hub)
        remove_user_objects(client, user)
    return statistics.median(bare), statistics.median(spawned)


def rebuild_vs_build(runs: int) -> tuple[float, float]:
    import asyncio

    from traitlets.config import Config

    from jupyterhub_civis.spawner.docker_builder import DockerImageBuilder

    client = docker_client()
    config = Config()
    config.DockerImageBuilder.registry = REGISTRY
    config.DockerImageBuilder.network_mode = "host"
    builder = DockerImageBuilder(config=config)
    packages = ["tabulate==0.9.0", "humanize==4.9.0"]
    builds, lookups = [], []
    for run in range(runs):
        first = asyncio.run(builder.ensure(BASE_IMAGE, packages))
        _forget(client, first.tag, first.digest)  # the next ensure is a cold build
        started = time.perf_counter()
        built = asyncio.run(builder.ensure(BASE_IMAGE, packages))
        builds.append(time.perf_counter() - started)
        started = time.perf_counter()
        again = asyncio.run(builder.ensure(BASE_IMAGE, packages))
        lookups.append(time.perf_counter() - started)
        assert built.built and not again.built and again.digest == built.digest
        print(f"image run {run + 1}: build {builds[-1]:.2f} s, rebuild {lookups[-1] * 1000:.0f} ms", flush=True)
    return statistics.median(builds), statistics.median(lookups)


def _forget(client, tag: str, digest: str) -> None:
    repository = tag.split("/", 1)[1].rsplit(":", 1)[0]
    requests.delete(f"http://{REGISTRY}/v2/{repository}/manifests/{digest}", timeout=30)
    client.remove_image(tag, force=True)


def kube_start_vs_init_install(tmp: Path, runs: int) -> tuple[float, float]:
    import os

    from docker_kubelet import DockerKubelet
    from kube_cluster import ApiServer

    client = docker_client()
    api = ApiServer().start()
    kubelet = DockerKubelet(api, KUBE_NAMESPACE, tmp / "nodes", client).start()
    os.environ["KUBECONFIG"] = str(api.kubeconfig(tmp / "kubeconfig.yaml", KUBE_NAMESPACE))
    times = {}
    try:
        for mode in ("builder", "install-on-start"):
            hub = start_hub(tmp / f"kube-{mode}", kube_config(mode, KUBE_PACKAGES))
            user = hub.create_user("bench")
            try:
                hub_server(hub, user, "warmup", {"environment": "tabulate"})  # image built/pulled
                hub.stop(user, "warmup", remove=True)
                times[mode] = []
                for run in range(runs):
                    name = f"run{run}-{uuid.uuid4().hex[:4]}"
                    times[mode].append(hub_server(hub, user, name, {"environment": "tabulate"}))
                    hub.stop(user, name, remove=True)
                    print(f"kube {mode} run {run + 1}: {times[mode][-1]:.2f} s", flush=True)
            finally:
                stop_hub(hub)
        if kubelet.errors:
            raise RuntimeError(kubelet.errors)
    finally:
        kubelet.stop()
        api.stop()
    return statistics.median(times["builder"]), statistics.median(times["install-on-start"])


def run_all(tmp: Path, runs: int, only: str = "") -> str:
    if only == "kube":
        built, install = kube_start_vs_init_install(tmp, max(2, runs // 2))
        print(f"Kubernetes emulator ({', '.join(KUBE_PACKAGES)}): pod from built image {built:.2f} s, "
              f"install-on-start {install:.2f} s")
        return f"kube_start_vs_init_install={built / install:.2f}"
    bare, hub = docker_prepulled_vs_bare(tmp, runs)
    print(f"docker run of the image (bare jupyter server), median: {bare:.2f} s")
    print(f"named server from the pre-pulled image through the hub, median: {hub:.2f} s")
    build, rebuild = rebuild_vs_build(max(2, runs // 2))
    print(f"environment image: first build {build:.2f} s, second request {rebuild * 1000:.0f} ms")
    built, install = kube_start_vs_init_install(tmp, max(2, runs // 2))
    print(f"Kubernetes emulator ({', '.join(KUBE_PACKAGES)}): pod from built image {built:.2f} s, "
          f"install-on-start {install:.2f} s")
    return (f"docker_prepulled_vs_bare={hub / bare:.2f} rebuild_vs_build={rebuild / build:.3f} "
            f"kube_start_vs_init_install={built / install:.2f}")
