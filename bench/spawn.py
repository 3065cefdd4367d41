"""How long until a named server answers, next to a bare ``jupyter server`` start.

Runs on this machine, side by side in one run:

1. ``bare``: ``jupyter server`` (same venv, same extensions, JupyterLab included)
   from process start until ``/api`` answers;
2. ``hub``: ``POST /hub/api/users/<u>/servers/<name>`` on a real JupyterHub
   with the bundle's local config until ``/user/<u>/<name>/api`` answers
   through the proxy;
3. ``concurrent``: 10 users x 3 named servers started at once;
4. with ``make docker-env`` (skipped with ``--no-docker``): the Docker backend and
   built images (``bench/docker_spawn.py``): ``docker_prepulled_vs_bare``,
   ``rebuild_vs_build``, ``kube_start_vs_init_install``.

Runs alternate (bare, hub, bare, hub, ...) so both see the same machine state.
The last line is ``spawn_ratio=<hub median / bare median> concurrent=<ok>/<total>``
followed by the Docker ratios.

    .venv/bin/python bench/spawn.py [--runs 5] [--users 10] [--servers 3] [--no-preload] [--no-docker]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from civis_test_support import TEST_TOKEN, free_port, start_hub, stop_hub, wait_for  # noqa: E402

AUTH = {"Authorization": f"token {TEST_TOKEN}"}


def answers(url: str, headers: dict | None = None) -> bool:
    try:
        return requests.get(url, headers=headers, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def bare_start(workdir: Path) -> float:
    port = free_port()
    jupyter = Path(sys.executable).parent / "jupyter"
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            str(jupyter),
            "server",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.token=bench",
            "--ServerApp.allow_root=True",
            f"--ServerApp.root_dir={workdir}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: answers(f"http://127.0.0.1:{port}/api", {"Authorization": "token bench"}),
            timeout=120,
            interval=0.02,
            message="bare jupyter server",
        )
        return time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(30)


def hub_start(hub, user: str, server: str) -> float:
    started = time.perf_counter()
    r = hub.start(user, server, {"environment": "python"})
    if r.status_code not in (201, 202):
        raise RuntimeError(f"{user}/{server}: {r.status_code} {r.text}")
    wait_for(
        lambda: answers(f"{hub.url}/user/{user}/{server}/api", AUTH),
        timeout=300,
        interval=0.02,
        message=f"{user}/{server}",
    )
    return time.perf_counter() - started


def concurrent_starts(hub, users: int, servers: int) -> tuple[int, int, float]:
    names = [hub.create_user("burst") for _ in range(users)]
    jobs = [(u, f"s{i}") for u in names for i in range(servers)]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda job: _try(hub_start, hub, *job), jobs))
    wall = time.perf_counter() - started
    for user, server in jobs:
        hub.stop(user, server)
    return sum(r is not None for r in results), len(jobs), wall


def _try(fn, *args):
    try:
        return fn(*args)
    except Exception as e:
        print(f"  failed: {e}", file=sys.stderr)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument(
        "--no-preload",
        action="store_true",
        help="start servers as fresh interpreters (c.CivisLocalSpawner.preload_servers = False); "
        "the demo config preloads",
    )
    parser.add_argument("--no-docker", action="store_true", help="skip the Docker figures")
    parser.add_argument("--only-docker", action="store_true", help="only the Docker figures")
    args = parser.parse_args()
    docker_line = ""

    if not args.no_docker:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from docker_spawn import run_all

        with tempfile.TemporaryDirectory(prefix="civis-bench-docker-") as tmp:
            docker_line = run_all(Path(tmp), args.runs)
        if args.only_docker:
            print(docker_line)
            return

    with tempfile.TemporaryDirectory(prefix="civis-bench-") as tmp:
        tmp = Path(tmp)
        hub = start_hub(
            tmp / "hub", "c.CivisLocalSpawner.preload_servers = False\n" if args.no_preload else ""
        )
        try:
            user = hub.create_user("bench")
            bare_start(tmp)  # warm the page cache for both
            hub_start(hub, user, "warmup")
            hub.stop(user, "warmup", remove=True)
            bare, spawned = [], []
            for run in range(args.runs):
                bare.append(bare_start(tmp))
                name = f"run{run}-{uuid.uuid4().hex[:4]}"
                spawned.append(hub_start(hub, user, name))
                hub.stop(user, name, remove=True)
                print(f"run {run + 1}: bare {bare[-1]:.2f} s, hub {spawned[-1]:.2f} s", flush=True)
            ok, total, wall = concurrent_starts(hub, args.users, args.servers)
        finally:
            stop_hub(hub)

    bare_median, hub_median = statistics.median(bare), statistics.median(spawned)
    print(f"bare jupyter server, median of {args.runs}: {bare_median:.2f} s")
    print(f"named server through the hub, median of {args.runs}: {hub_median:.2f} s")
    print(f"{args.users} users x {args.servers} servers at once: {ok}/{total} in {wall:.1f} s")
    print(f"spawn_ratio={hub_median / bare_median:.2f} concurrent={ok}/{total} {docker_line}".rstrip())


if __name__ == "__main__":
    main()
