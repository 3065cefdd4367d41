"""Helpers for the civis service tests: Arrow bodies, an API client, service processes."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow as pa
import requests
from civis_test_support import (
    Hub,
)

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"
PREFIX = "/services/civis/"


def arrow_stream(rows: int = 1000, seed: int = 0) -> bytes:
    table = pa.table({"i": pa.array(range(seed, seed + rows)), "s": [f"v{i}" for i in range(rows)]})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        for batch in table.to_batches(max_chunksize=max(1, rows // 4)):
            w.write_batch(batch)
    return sink.getvalue()


def read_stream(body: bytes) -> pa.Table:
    return pa.ipc.open_stream(body).read_all()


class ServiceClient:
    """The service's HTTP API as a caller holding ``token`` sees it."""

    def __init__(self, base: str, token: str | None):
        self.base = base.rstrip("/") + "/"
        self.token = token
        self.http = requests.Session()

    def request(self, method, path, *, token="default", headers=None, **kw):
        token = self.token if token == "default" else token
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"token {token}"
        return self.http.request(method, self.base + path, headers=h, timeout=60, **kw)

    def put(self, body, *, key="k", sql="select 1", connection="warehouse", rows=0, **kw):
        meta = json.dumps({"key": key, "sql": sql, "connection": connection, "rows": rows})
        return self.request(
            "POST", "api/results", data=body, headers={"X-Civis-Result": meta}, **kw
        )

    def put_ok(self, body=None, **kw) -> dict:
        r = self.put(body if body is not None else arrow_stream(), **kw)
        assert r.status_code == 201, r.text
        return r.json()

    def get(self, rid, **kw):
        return self.request("GET", f"api/results/{rid}", **kw)

    def list(self, **params):
        r = self.request("GET", "api/results", params=params)
        assert r.status_code == 200, r.text
        return r.json()["results"]

    def pin(self, rid, ref, **kw):
        return self.request("PUT", f"api/results/{rid}/pins", json={"ref": ref}, **kw)

    def unpin(self, rid, ref, **kw):
        return self.request("DELETE", f"api/results/{rid}/pins", params={"ref": ref}, **kw)

    def delete(self, rid, **kw):
        return self.request("DELETE", f"api/results/{rid}", **kw)


def service_config(
    port: int, args: list[str], env: dict | None = None, managed=True, handoff_socket=None
) -> str:
    """Extra hub config declaring the service anew (replacing the local config's)."""
    return (
        "from jupyterhub_civis.service.hubconfig import declare_service\n"
        f"svc = declare_service(c, url='http://127.0.0.1:{port}', args={args!r},"
        f" environment={env or {}!r}, api_token={None if managed else EXTERNAL_TOKEN!r},"
        f" handoff_socket={handoff_socket!r})\n"
    )


EXTERNAL_TOKEN = "civis-service-" + uuid.uuid4().hex


def wait_service(base: str, proc=None, timeout: float = 60):
    """Wait for the service's health endpoint; fail at once if its process exits."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"service exited with {proc.returncode}")
        try:
            if requests.get(base.rstrip("/") + "/health", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"service health at {base}")
        time.sleep(0.1)


class ServiceHub:
    def __init__(self, hub: Hub, service_port: int):
        self.hub = hub
        self.service_port = service_port
        self.base = hub.url + PREFIX  # through the hub's proxy

    def client(self, token) -> ServiceClient:
        return ServiceClient(self.base, token)

    def new_user(self, prefix="u", admin=False) -> tuple[str, str]:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        r = self.hub.api("POST", f"/users/{name}", json={"admin": admin})
        assert r.status_code == 201, r.text
        return name, self.hub.user_token(name)


class ServiceProcess:
    """One replica of the service, started outside the hub (as a Deployment would)."""

    def __init__(self, hub_url_api: str, port: int, args: list[str], env: dict, log: Path):
        self.port = port
        self.args = args
        self.env = {
            **os.environ,
            **env,
            "JUPYTERHUB_API_TOKEN": EXTERNAL_TOKEN,
            "JUPYTERHUB_API_URL": hub_url_api,
            "JUPYTERHUB_CLIENT_ID": "service-civis",
            "JUPYTERHUB_SERVICE_NAME": "civis",
            "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
            "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps(["access:services!service=civis"]),
        }
        self.log = log
        self.proc = None
        self.base = f"http://127.0.0.1:{port}{PREFIX}"

    def start(self, umask: int = -1):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub_civis.cli", "service", *self.args],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=umask,
        )
        wait_service(self.base, self.proc)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def client(self, token) -> ServiceClient:
        return ServiceClient(self.base, token)


def logged_in_page(browser, hub, user):
    page = browser.new_context().new_page()
    page.set_default_timeout(60_000)
    page.csp_violations = []
    page.on(
        "console",
        lambda m: page.csp_violations.append(m.text) if "Content Security Policy" in m.text else 0,
    )
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", "civis-demo")
    page.click("#login_submit")
    page.wait_for_url(re.compile(r".*/hub/.*"))
    return page
