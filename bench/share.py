"""Shared-notebook links, side by side in one run, on a real hub (config/local):

1. ``view``: opening a shared notebook (50 cells, ~5 MB of outputs) — what a browser
   loads from the service to show its first screen — next to ``render``:
   rendering the same file with nbconvert's HTML exporter from scratch (in process,
   the work an uncached viewer would do). Renders are cached per version.
2. ``copy``: "Open a copy" (viewer page form → the viewer's named server started →
   spawn-pending → the server extension saves the copy → JupyterLab's page answers)
   next to ``spawn``: starting a named server with the same environment until its
   ``/api`` answers through the proxy. Runs alternate; servers are removed between.
3. ``viewers``: concurrent viewers (distinct users) of one link: all served? p95.

A view is what Chromium (Playwright, 1280×720) requested of the service when it
opened this notebook's link: the viewer page ``s/<id>``, its rendering
``s/<id>/render?v=1`` (whole: 4.3 MB of HTML, ~0.5 MB gzipped) and the one image
in the first section (``render/img/<sha256>.png``). The rendering's other images are
``loading="lazy"`` thousands of pixels below and were not fetched; the hub's own
static files (versioned URLs, cached by the browser) are not the service's and are
left out. Each viewer is one kept-alive ``http.client`` connection asking for gzip
as a browser does: the viewers run on the machine they measure, so the client is
the lightest the standard library has (a ``requests.Session`` per viewer cost ~10 ms
of CPU per view, more than the service). Each checks it got the whole document: the
first viewer inflates it and finds "Section 49" (and the first section's image);
every later viewer's bytes must equal those by SHA-256 (else they are inflated and
checked in full), so the client does not spend the machine's CPU inflating 4.3 MB
per viewer.

The viewers come as one burst of identities new to the service (each token asked of
the hub), then ``--bursts`` bursts of returning viewers (identity cached); the p95
is over every returning view. Each burst prints the CPU it cost per view, by
process (client, hub, proxy, service): on two cores, that is where the time goes.

The last line is
``view_vs_render=<ratio> copy_vs_spawn=<ratio> viewers_ok=<ok>/<n> viewers_p95_ms=<ms>``.

    .venv/bin/python bench/share.py [--runs 5] [--copies 3] [--viewers 100] [--bursts 3]

``--copies 0`` leaves out the copies (views only).
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import hashlib
import http.client
import os
import re
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import nbconvert
import nbformat
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from civis_test_support import login, start_hub, stop_hub, wait_for  # noqa: E402

ENVIRONMENT = {"environment": "python"}


def big_notebook(cells: int = 50, output_bytes: int = 5 << 20) -> str:
    per_cell = output_bytes // cells
    nb = nbformat.v4.new_notebook()
    nb.metadata["jupyterhub_civis"] = {"environment": {"name": "python", "packages": []}}
    rows = "".join(f"<tr><td>{i:06d}</td><td>value {i:06d}</td></tr>" for i in range(per_cell // 44))
    png = base64.b64encode(os.urandom(per_cell * 3 // 4)).decode()
    for i in range(cells):
        data = {"text/html": f"<table>{rows}</table>", "text/plain": "table"}
        if i % 5 == 0:
            data = {"image/png": png, "text/plain": "figure"}
        nb.cells.append(nbformat.v4.new_markdown_cell(f"## Section {i}\nSome *text*."))
        nb.cells.append(
            nbformat.v4.new_code_cell(
                f"show({i})", outputs=[nbformat.v4.new_output("display_data", data=data)]
            )
        )
    return nbformat.writes(nb)


def timed(fn):
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


class Reference:
    """The rendering as the first viewer received it, checked in full: later viewers'
    bytes (the service gzips a version once) are compared with it by digest, so the
    client does not inflate and search 4 MB per viewer on the machine it measures."""

    digest: bytes | None = None
    images: list[str] = []


def view(base: str, sid: str, token: str) -> None:
    """The first screen of the link, as Chromium loads it (see the module's docstring),
    over one kept-alive connection."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    headers = {"Authorization": f"token {token}", "Accept-Encoding": "gzip, deflate"}

    def get(path: str) -> tuple[bytes, http.client.HTTPResponse]:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()  # as sent: http.client does not inflate
        assert response.status == 200, (path, response.status)
        return body, response

    try:
        get(f"{url.path}s/{sid}")
        wire, response = get(f"{url.path}s/{sid}/render?v=1")
        if hashlib.sha256(wire).digest() != Reference.digest:
            gzipped = response.getheader("Content-Encoding") == "gzip"
            body = zlib.decompress(wire, wbits=47) if gzipped else wire
            assert b"Section 49" in body, "the rendering is incomplete"
            first_section = body[: body.index(b"Section 1<")]
            rendering = f"{url.path}s/{sid}/render"
            Reference.images = [urljoin(rendering, src.decode()) for src in dict.fromkeys(
                re.findall(rb'<img [^>]*src="([^"]+)"', first_section))]
            Reference.digest = hashlib.sha256(wire).digest()
        for path in Reference.images:
            image, _ = get(path)
            assert image, path
    finally:
        conn.close()


def cpu_seconds(hub_pid: int) -> dict[str, float]:
    """CPU time (user + system) so far of the hub and the processes it started (proxy,
    service, servers), by part, and of this client: where a burst of viewers spends
    the machine's cores."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        stats[int(stat.parent.name)] = (int(fields[1]), cmdline, int(fields[11]) + int(fields[12]))
    family, grew = {hub_pid}, True
    while grew:
        grown = family | {pid for pid, (ppid, _, _) in stats.items() if ppid in family}
        family, grew = grown, grown != family
    parts: dict[str, float] = {}
    for pid in family & stats.keys():
        _, cmdline, ticks = stats[pid]
        part = ("proxy" if b"http-proxy" in cmdline
                else "service" if b"jupyterhub_civis" in cmdline
                else "hub" if b"jupyterhub" in cmdline else "other")
        parts[part] = parts.get(part, 0.0) + ticks / tick
    own = os.times()
    parts["client"] = own.user + own.system
    return parts


def render_from_scratch(raw: str) -> None:
    nbconvert.HTMLExporter().from_notebook_node(nbformat.reads(raw, as_version=4))


def viewer_form(base: str, sid: str, session: requests.Session) -> str:
    """The viewer page as the person sees it before clicking "Open a copy": its _xsrf."""
    page = session.get(f"{base}s/{sid}", timeout=60)
    return re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)


def open_copy(hub, base: str, sid: str, session: requests.Session, xsrf: str,
              split: list | None = None) -> None:
    started = time.perf_counter()
    r = session.post(f"{base}s/{sid}/copy?v=1", data={"_xsrf": xsrf}, timeout=120,
                     allow_redirects=False)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    if split is not None:  # the service's answer (it starts the server) vs the rest
        split.append(time.perf_counter() - started)
    pending = hub.url + r.headers["Location"]

    def in_lab():
        got = session.get(pending, timeout=60)
        return got.status_code == 200 and "/lab/tree/shared/" in got.url

    wait_for(in_lab, timeout=240, interval=0.05, message="copy open in JupyterLab")


def spawn(hub, user: str, name: str, token: str) -> None:
    r = hub.api("POST", f"/users/{user}/servers/{name}", json=ENVIRONMENT)
    assert r.status_code in (201, 202), r.text
    h = {"Authorization": f"token {token}"}

    def answers():
        return requests.get(f"{hub.url}/user/{user}/{name}/api", headers=h, timeout=10).ok

    wait_for(answers, timeout=240, interval=0.05, message="named server")


def remove_servers(hub, user: str) -> None:
    for name in list(hub.api("GET", f"/users/{user}").json()["servers"]):
        hub.api("DELETE", f"/users/{user}/servers/{name}", json={"remove": True})
    wait_for(lambda: hub.api("GET", f"/users/{user}").json()["servers"] == {}, timeout=60,
             message="servers removed")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--bursts", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="civis-bench-share-") as state:
        hub = start_hub(Path(state))
        try:
            base = f"{hub.url}/services/civis/"
            wait_for(lambda: requests.get(base + "health", timeout=5).ok, message="service")
            owner = hub.create_user("bench-owner")
            owner_token = hub.user_token(owner)
            viewers = [hub.create_user("bench-viewer") for _ in range(args.viewers)]
            raw = big_notebook()
            r = requests.post(base + "api/shares", timeout=120,
                              headers={"Authorization": f"token {owner_token}"},
                              json={"notebook": raw, "path": "big.ipynb",
                                    "audience": {"everyone": True}})
            assert r.status_code == 201, r.text
            sid = r.json()["id"]
            print(f"notebook: {len(raw) / 2**20:.1f} MiB, 50 code cells", flush=True)

            # 1. view (cached render) vs nbconvert from scratch, alternating
            viewer = viewers[0]
            viewer_token = hub.user_token(viewer)
            view(base, sid, viewer_token)  # the first view renders and caches
            views, renders = [], []
            for run in range(args.runs):
                views.append(timed(lambda: view(base, sid, viewer_token)))
                renders.append(timed(lambda: render_from_scratch(raw)))
                print(f"run {run + 1}: view {views[-1] * 1000:.0f} ms, "
                      f"render {renders[-1] * 1000:.0f} ms", flush=True)
            view_ratio = statistics.median(views) / statistics.median(renders)

            # 2. open a copy vs start a named server in the same environment
            copies, spawns = [], []
            if args.copies:  # --copies 0: views only
                session = login(hub, viewer)
                # untimed: the environment's first server on this hub (a cold start that
                # would fall on whichever side happened to run first)
                spawn(hub, viewer, "warmup", viewer_token)
                remove_servers(hub, viewer)
                for run in range(args.copies):
                    xsrf = viewer_form(base, sid, session)  # the person is on the page: untimed
                    split: list = []
                    copies.append(
                        timed(lambda x=xsrf, sp=split: open_copy(hub, base, sid, session, x, sp))
                    )
                    remove_servers(hub, viewer)
                    spawns.append(timed(lambda n=f"plain{run}": spawn(hub, viewer, n, viewer_token)))
                    remove_servers(hub, viewer)
                    print(f"copy {run + 1}: open a copy {copies[-1]:.2f} s (service answered the "
                          f"form after {split[0]:.2f} s), spawn {spawns[-1]:.2f} s", flush=True)
            copy_ratio = (statistics.median(copies) / statistics.median(spawns)
                          if copies else float("nan"))

            # 3. concurrent viewers, each a user of their own: first as never seen by the
            # service (each token's identity asked of the hub), then as returning viewers
            tokens = [hub.user_token(v) for v in viewers]

            def one(token):
                try:
                    return timed(lambda: view(base, sid, token))
                except Exception as e:
                    print(f"  viewer failed: {e}", file=sys.stderr)
                    return None

            def burst():
                before = cpu_seconds(hub.process.pid)
                with concurrent.futures.ThreadPoolExecutor(len(tokens)) as pool:
                    times = list(pool.map(one, tokens))
                after = cpu_seconds(hub.process.pid)
                print("  CPU per view (ms): " + ", ".join(
                    f"{part} {(after[part] - before.get(part, 0.0)) * 1000 / len(tokens):.1f}"
                    for part in sorted(after)), flush=True)
                return [t for t in times if t is not None]

            def p95_ms(times):
                return statistics.quantiles(times, n=20)[-1] * 1000 if len(times) > 1 else float("nan")

            cold = burst()
            print(f"{len(tokens)} viewers at once, identities new to the service: "
                  f"{len(cold)}/{len(tokens)} served, p95 {p95_ms(cold):.0f} ms", flush=True)
            returning, served = [], []
            for _ in range(args.bursts):
                times = burst()
                returning += times
                served.append(len(times))
                print(f"{len(tokens)} viewers at once, returning (identity cached): "
                      f"{len(times)}/{len(tokens)} served, p95 {p95_ms(times):.0f} ms", flush=True)
            print(f"view (page + cached render + first image), median: {statistics.median(views) * 1000:.0f} ms")
            print(f"nbconvert from scratch, median: {statistics.median(renders) * 1000:.0f} ms")
            if copies:
                print(f"open a copy, median: {statistics.median(copies):.2f} s; "
                      f"named server spawn, median: {statistics.median(spawns):.2f} s")
            load1, load5, load15 = os.getloadavg()
            print(f"load average (1, 5, 15 min): {load1:.1f} {load5:.1f} {load15:.1f} "
                  f"on {os.cpu_count()} cores")
            print(f"view_vs_render={view_ratio:.3f} copy_vs_spawn={copy_ratio:.2f} "
                  f"viewers_ok={min(served)}/{len(tokens)} viewers_p95_ms={p95_ms(returning):.0f}")
        finally:
            stop_hub(hub)


if __name__ == "__main__":
    main()
