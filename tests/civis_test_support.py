"""Helpers that run the real thing: a JupyterHub process with the bundle's
local config, configurable-http-proxy, real single-user servers and kernels."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
LOCAL_CONFIG = ROOT / "config" / "local" / "jupyterhub_config.py"
PROXY = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
TEST_TOKEN = "civis-test-" + uuid.uuid4().hex
CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright never downloads a browser here
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


_handed_out: set[int] = set()


def free_port() -> int:
    """A free TCP port on 127.0.0.1, never one this process handed out before.

    The kernel may offer the same ephemeral port to consecutive bind(0) calls;
    a hub restarted with new ports could then collide with a port another part
    of the same test (a managed service, the old hub's proxy) still holds.
    """
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_for(condition, timeout: float = 60, interval: float = 0.1, message: str = "condition"):
    """Poll ``condition`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as e:  # the thing we wait for may not answer yet
            last_error = e
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout}s waiting for {message} (last error: {last_error})"
    )


@dataclass
class Hub:
    url: str
    state_dir: Path
    process: subprocess.Popen
    log_path: Path
    session: requests.Session = field(default_factory=requests.Session)

    def api(self, method: str, path: str, token: str = TEST_TOKEN, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {token}", **kwargs.pop("headers", {})}
        return self.session.request(
            method, f"{self.url}/hub/api{path}", headers=headers, timeout=120, **kwargs
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def create_user(self, prefix: str = "user") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        r = self.api("POST", f"/users/{name}")
        assert r.status_code == 201, r.text
        return name

    def server(self, user: str, server: str) -> dict | None:
        return (
            self.api("GET", f"/users/{user}?include_stopped_servers=1")
            .json()["servers"]
            .get(server)
        )

    def start(self, user: str, server: str, options=None, **kwargs) -> requests.Response:
        body = None if options is None else json.dumps(options)
        return self.api("POST", f"/users/{user}/servers/{server}", data=body, **kwargs)

    def start_and_wait(self, user: str, server: str, options=None, timeout: float = 240) -> dict:
        r = self.start(user, server, options)
        assert r.status_code in (201, 202), r.text
        return self.wait_ready(user, server, timeout)

    def wait_ready(self, user: str, server: str, timeout: float = 240) -> dict:
        def ready():
            model = self.server(user, server)
            if model and model["ready"]:
                return model
            if model is None or (not model["pending"] and not model["ready"]):
                raise AssertionError(
                    f"{user}/{server} stopped while starting:\n{self.log()[-3000:]}"
                )
            return None

        return wait_for(ready, timeout=timeout, interval=0.2, message=f"{user}/{server} ready")

    def stop(self, user: str, server: str, remove: bool = False) -> None:
        r = self.api(
            "DELETE", f"/users/{user}/servers/{server}", json={"remove": remove} if remove else None
        )
        assert r.status_code in (202, 204), r.text

        def stopped():
            model = self.api("GET", f"/users/{user}").json()["servers"].get(server)
            return model is None or (not model["pending"] and not model["ready"])

        wait_for(stopped, timeout=60, message=f"{user}/{server} stopped")

    def start_and_follow(self, user: str, server: str, options=None):
        """Start a server and collect its progress stream from the first event.

        The stream is opened while the start request is in flight; a stream
        opened after the server is ready would only carry the final event.
        Returns ``(start response, events)``.
        """
        import concurrent.futures

        events: list[dict] = []

        def follow():
            with self.api("GET", f"/users/{user}/servers/{server}/progress", stream=True) as r:
                if r.status_code != 200:
                    return False
                for line in r.iter_lines(decode_unicode=True):
                    if line and line.startswith("data:"):
                        events.append(json.loads(line[5:]))
            return True

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            started = pool.submit(self.start, user, server, options)
            wait_for(follow, timeout=120, interval=0.05, message=f"{user}/{server} progress")
            return started.result(), events

    def user_token(self, user: str) -> str:
        r = self.api("POST", f"/users/{user}/tokens", json={"note": "test", "expires_in": 3600})
        assert r.status_code == 201, r.text
        return r.json()["token"]


def start_hub(state_dir: Path, extra_config: str = "", env: dict | None = None) -> Hub:
    """A JupyterHub process with config/local plus ``extra_config`` (Python appended to
    the config) and ``env`` (extra environment), answering on fresh ports."""
    state_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = state_dir / "test_config.py"
    config.write_text(
        f"load_subconfig({str(LOCAL_CONFIG)!r})\n"
        # the local config's services and roles (the civis service) stay
        f"c.JupyterHub.services.append({{'name': 'civis-tests', 'api_token': {TEST_TOKEN!r}}})\n"
        "c.JupyterHub.load_roles.append({'name': 'civis-tests', 'services': ['civis-tests'],\n"
        "  'scopes': ['admin:users', 'admin:servers', 'access:servers', 'tokens', 'read:users', 'admin:groups']})\n"
        + extra_config
    )
    env = {
        **os.environ,
        **(env or {}),
        "CIVIS_STATE_DIR": str(state_dir),
        "CIVIS_HUB_PORT": str(port),
        "CIVIS_HUB_API_PORT": str(free_port()),
        "CIVIS_PROXY_API_PORT": str(free_port()),
        "CIVIS_SERVICE_PORT": str(free_port()),
    }
    log_path = state_dir / "hub.log"
    log = log_path.open("ab")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(config)],
        cwd=state_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    hub = Hub(
        url=f"http://127.0.0.1:{port}", state_dir=state_dir, process=process, log_path=log_path
    )

    def answers():
        if process.poll() is not None:
            raise RuntimeError(f"hub exited with {process.returncode}:\n{hub.log()[-3000:]}")
        return hub.api("GET", "/").status_code == 200

    try:
        wait_for(answers, timeout=60, interval=0.1, message="the hub API")
    except BaseException:
        stop_hub(hub)
        raise
    return hub


def stop_hub(hub: Hub) -> None:
    """Stop the hub as Ctrl-C does; if it had already died, stop the proxy it left."""
    if hub.process.poll() is not None:
        _stop_orphan_proxy(hub.state_dir / "jupyterhub-proxy.pid")
    if hub.process.poll() is None:
        hub.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            hub.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(hub.process.pid, signal.SIGKILL)
            hub.process.wait()


class HubRun:
    """The one way tests run a hub: config/local + ``extra_config`` + ``env`` on one state
    folder, started (``start`` or ``with``) and stopped as often as a test needs.
    Stopping waits until every process the hub started has exited."""

    def __init__(self, state_dir: Path, extra_config: str = "", env: dict | None = None):
        self.state_dir = state_dir
        self.extra_config = extra_config
        self.env = env or {}
        self.hub: Hub | None = None

    def start(self) -> Hub:
        require_tools()
        self.hub = start_hub(self.state_dir, self.extra_config, self.env)
        return self.hub

    def stop(self) -> None:
        if self.hub is None:
            return
        stop_hub(self.hub)
        wait_for(
            lambda: not processes_under(self.state_dir),
            timeout=30,
            message="every process of the hub to exit",
        )

    def __enter__(self) -> Hub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _stop_orphan_proxy(pid_file: Path) -> None:
    try:
        os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
    except (OSError, ValueError):
        pass


def processes_under(folder: Path) -> list[str]:
    """Command lines of live processes whose working folder or command mentions ``folder``."""
    found = []
    needle = str(folder)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if needle in cmdline or cwd.startswith(needle):
            found.append(f"{pid}: {cmdline.strip()}")
    return found


def run_code(
    hub: Hub,
    user: str,
    server: str,
    code: str,
    token: str = TEST_TOKEN,
    notebook_path: str | None = None,
) -> str:
    """Run ``code`` in a new kernel of a running server, through the hub's proxy.

    With ``notebook_path`` the kernel belongs to a session of that notebook (as
    when a person opens it), otherwise it is a bare kernel. Returns everything
    the kernel printed; raises if the code raised.
    """
    import websocket

    base = f"{hub.url}/user/{user}/{server}"
    headers = {"Authorization": f"token {token}"}
    if notebook_path:
        r = hub.session.post(
            f"{base}/api/sessions",
            headers=headers,
            json={
                "path": notebook_path,
                "type": "notebook",
                "name": notebook_path,
                "kernel": {"name": "python3"},
            },
            timeout=60,
        )
        assert r.status_code == 201, r.text
        kernel_id, cleanup = r.json()["kernel"]["id"], f"{base}/api/sessions/{r.json()['id']}"
    else:
        r = hub.session.post(f"{base}/api/kernels", headers=headers, json={}, timeout=60)
        assert r.status_code == 201, r.text
        kernel_id = r.json()["id"]
        cleanup = f"{base}/api/kernels/{kernel_id}"
    ws = websocket.create_connection(
        f"ws{base[4:]}/api/kernels/{kernel_id}/channels",
        header=[f"Authorization: token {token}"],
        timeout=120,
    )
    try:
        msg_id = uuid.uuid4().hex
        ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": user,
                        "session": uuid.uuid4().hex,
                        "msg_type": "execute_request",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                }
            )
        )
        output, error = [], None
        while True:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "stream":
                output.append(msg["content"]["text"])
            elif kind == "error":
                error = "\n".join(msg["content"]["traceback"])
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                break
    finally:
        ws.close()
        hub.session.delete(cleanup, headers=headers, timeout=60)
    if error:
        raise AssertionError(f"kernel raised:\n{error}")
    return "".join(output)


class HubServer:
    """One named server of a user, reached through the hub's proxy with the test token."""

    def __init__(self, hub: Hub, user: str, name: str):
        self.hub, self.user, self.name = hub, user, name
        self.base = f"{hub.url}/user/{user}/{name}/"
        self.headers = {"Authorization": f"token {TEST_TOKEN}"}

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return self.hub.session.request(
            method, self.base + path, headers=self.headers, timeout=120, **kw
        )

    def run(self, code: str, notebook_path: str | None = None) -> str:
        """Execute ``code`` in a new kernel (of a notebook session, with ``notebook_path``)."""
        return run_code(self.hub, self.user, self.name, code, notebook_path=notebook_path)

    def run_in_notebook(self, path: str, code: str) -> str:
        return self.run(code, notebook_path=path)


def require_tools() -> None:
    if not PROXY.exists():
        pytest.fail(f"{PROXY} is missing: run `make test` (it installs configurable-http-proxy)")


def login(hub: Hub, user: str, password: str = "civis-demo") -> requests.Session:
    """A browser-like session logged in through the hub's login form."""
    session = requests.Session()
    session.get(f"{hub.url}/hub/login", timeout=30)
    r = session.post(
        f"{hub.url}/hub/login",
        data={"username": user, "password": password, "_xsrf": session.cookies.get("_xsrf")},
        timeout=30,
    )
    assert r.status_code == 200 and "/hub/login" not in r.url, r.url
    return session


# ---------------------------------------------------------------- a warehouse

PG_ADMIN = os.environ.get("CIVIS_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


class Postgres:
    def __init__(self, dbname: str):
        self.dbname = dbname
        self.url = PG_ADMIN.rsplit("/", 1)[0] + "/" + dbname

    def execute(self, sql: str, params=None):
        with psycopg.connect(self.url, autocommit=True) as c:
            cur = c.execute(sql, params)
            return cur.fetchall() if cur.description else None

    def active(self, marker: str) -> list:
        """Backends currently running a statement containing ``marker``."""
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            return c.execute(
                "select pid, state, query from pg_stat_activity where state = 'active' "
                "and query like %s and pid <> pg_backend_pid()",
                (f"%{marker}%",),
            ).fetchall()

    def set_reachable(self, reachable: bool):
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(
                f'alter database "{self.dbname}" with allow_connections {str(reachable).lower()}'
            )
            if not reachable:
                c.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s",
                    (self.dbname,),
                )
