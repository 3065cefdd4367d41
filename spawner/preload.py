"""Preloaded server starts: fork single-user servers from a warm "zygote".

Most of a local server's start-up is Python importing ``jupyter_server``,
``jupyterhub.singleuser`` and JupyterLab (~4 s). With
``c.CivisLocalSpawner.preload_servers = True`` the hub keeps one warm process
per environment, the *zygote*::

    <prefix>/bin/python -c "import jupyterhub_civis.spawner.preload as p; p.zygote_main()" \\
        --hub-pid <hub pid> --fd <n>

It imports the heavy modules once (no event loop, no threads), then waits for
spawn requests on a Unix socket pair shared with the hub: one JSON line
``{"argv": [...], "env": {...}, "cwd": "..."}`` per server. For each request it
forks a child that becomes ``python -m jupyterhub.singleuser <args>`` exactly as
a fresh interpreter would (new session, the given environment replaces
``os.environ``, working folder, ``sys.argv``) and replies ``{"pid": <child>}``.

Lifetime: the zygote ignores SIGINT and SIGCHLD (children are reaped by the
kernel), and exits when the hub's end of the socket closes, i.e. when the hub
exits for any reason. Servers run in their own sessions and are stopped by the
hub through their pid, as with ``Popen``; they survive a zygote's exit.

Hub side: ``PreloadedStart`` is a spawner mixin placed just before
``LocalProcessSpawner`` in the MRO; it replaces only the ``Popen`` step of
``LocalProcessSpawner.start`` and falls back to it on any problem.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import socket
import subprocess
import sys

MODULE = "jupyterhub_civis.spawner.preload"
SERVER_MODULE = "jupyterhub.singleuser"
#: imported once by each zygote; missing ones are skipped
PRELOAD = (
    "jupyter_server.serverapp",
    "jupyterhub.singleuser.mixins",
    "jupyterhub.singleuser.extension",
    "jupyterlab",
    "jupyterlab.labapp",
    "jupyter_server_terminals",
    "jupyter_lsp",
    "notebook_shim",
    "jupyter_client.ioloop",
    "jupyter_server.services.kernels.kernelmanager",
)
#: variables read when an interpreter starts: a zygote serves only servers whose
#: values equal its own (a different set gets its own zygote)
_STARTUP_PREFIXES = ("PYTHON", "LD_", "LC_")
_STARTUP_NAMES = ("LANG", "PATH", "VIRTUAL_ENV")
READY_TIMEOUT = 120.0
REPLY_TIMEOUT = 10.0


def startup_env(env: dict) -> dict:
    return {k: v for k, v in env.items() if k.startswith(_STARTUP_PREFIXES) or k in _STARTUP_NAMES}


# ----- the zygote (runs in the environment's interpreter) ---------------------------


def _become_server(request: dict, zygote_path0: str) -> int:
    """In the forked child: turn into ``python -m jupyterhub.singleuser <args>``."""
    import atexit
    import runpy

    argv = request["argv"]
    if argv[1:3] != ["-m", SERVER_MODULE]:
        raise ValueError(f"not a single-user server command: {argv!r}")
    os.setsid()  # like Popen(start_new_session=True): no signals from the hub's terminal
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # kernels must be waitable
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.clear()
    os.environ.update(request["env"])
    _title_as_server()
    os.chdir(request["cwd"])
    if sys.path and sys.path[0] == zygote_path0:
        sys.path[0] = os.getcwd()  # as `python -m` run in the server's folder
    # the package __init__ chooses the app (extension or not) from the environment
    sys.modules.pop(SERVER_MODULE, None)
    sys.argv = [argv[0], *argv[3:]]
    code = 0
    try:
        runpy.run_module(SERVER_MODULE, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    atexit._run_exitfuncs()
    return code


def _title_as_server() -> None:
    """``ps`` shows the server (user/name, environment), not the zygote's command line."""
    from jupyterhub_civis.notebook_environment import (
        ENV_VAR,
        environment_label,
        server_title,
        set_process_title,
    )

    try:
        label = environment_label(json.loads(os.environ.get(ENV_VAR) or "{}"))
    except ValueError:
        label = ""
    set_process_title(server_title(os.environ, label if label != "?" else ""))


def _fork_server(request: dict, sock: socket.socket, zygote_path0: str) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        # close the fd itself (the reader's reference would keep it open), or the
        # hub would not see EOF when the zygote dies while this server runs
        os.close(sock.detach())
        code = _become_server(request, zygote_path0)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _log(message: str) -> None:
    print(f"[civis-preload {os.getpid()}] {message}", file=sys.stderr, flush=True)


def zygote_main(argv=None) -> None:
    import argparse
    import importlib
    import threading

    parser = argparse.ArgumentParser(
        prog=MODULE, description="Preloaded single-user server starter"
    )
    parser.add_argument("--fd", type=int, required=True, help="this end of the hub's socket pair")
    parser.add_argument("--hub-pid", type=int, required=True, help="for ps; the socket decides")
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    os.set_inheritable(args.fd, False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the hub stops us by closing the socket
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps finished servers
    zygote_path0 = sys.path[0] if sys.path else ""
    try:  # set up while environ is intact: a child that replaced it could not retitle itself
        import setproctitle

        setproctitle.setproctitle(setproctitle.getproctitle())
    except ImportError:
        pass
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as e:  # the server itself will report a real problem
            _log(f"not preloaded: {name} ({type(e).__name__}: {e})")
    if threading.active_count() != 1:
        _log("a preloaded module started a thread; forking would be unsafe")
        sys.exit(1)
    reader = sock.makefile("rb")
    sock.sendall(json.dumps({"ready": True, "pid": os.getpid()}).encode() + b"\n")
    for line in reader:  # ends when the hub's end closes
        try:
            pid = _fork_server(json.loads(line), sock, zygote_path0)
            reply = {"pid": pid}
        except Exception as e:
            reply = {"error": f"{type(e).__name__}: {e}"}
        sock.sendall(json.dumps(reply).encode() + b"\n")


# ----- the hub side --------------------------------------------------------------------


class ZygoteError(RuntimeError):
    pass


class Zygote:
    """The hub's handle on one zygote: started on first use, one request at a time."""

    def __init__(self, python: str, env: dict, log):
        self.python = python
        self.env = env
        self.log = log
        self.process: subprocess.Popen | None = None
        self._lock = asyncio.Lock()
        self._reader = self._writer = None

    async def _start(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                # -c, not -m: the package imports this module before running it
                [
                    self.python,
                    "-c",
                    f"import {MODULE} as p; p.zygote_main()",
                    "--hub-pid",
                    str(os.getpid()),
                    "--fd",
                    str(theirs.fileno()),
                ],
                pass_fds=(theirs.fileno(),),
                env=self.env,
                cwd="/",
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches the hub only; we exit on EOF
            )
        finally:
            theirs.close()
        self._reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        reply = await self._read(READY_TIMEOUT)
        if not reply.get("ready"):
            raise ZygoteError(f"unexpected greeting {reply!r}")
        self.log.info("Preload process %d ready for %s", self.process.pid, self.python)

    async def _read(self, timeout: float) -> dict:
        line = await asyncio.wait_for(self._reader.readline(), timeout)
        if not line:
            raise ZygoteError(f"preload process for {self.python} exited")
        return json.loads(line)

    async def spawn(self, argv: list[str], env: dict, cwd: str) -> int:
        async with self._lock:
            try:
                if self.process is None:
                    await self._start()
                self._writer.write(
                    json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode() + b"\n"
                )
                await self._writer.drain()
                reply = await self._read(REPLY_TIMEOUT)
            except BaseException:
                self.close()
                raise
        if "pid" not in reply:
            raise ZygoteError(reply.get("error") or f"unexpected reply {reply!r}")
        return int(reply["pid"])

    def close(self) -> None:
        """Forget this zygote (the next spawn starts a new one)."""
        _zygotes.pop(self.key, None)
        if self._writer is not None:
            self._writer.close()
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()

    @property
    def key(self):
        return _key(self.python, self.env)


_zygotes: dict[tuple, Zygote] = {}


def _key(python: str, env: dict) -> tuple:
    return (python, tuple(sorted(env.items())))


def zygote_for(python: str, server_env: dict, log) -> Zygote:
    """The shared zygote for this interpreter and these start-up variables."""
    env = startup_env(server_env)
    key = _key(python, env)
    if key not in _zygotes:
        _zygotes[key] = Zygote(python, env, log)
    return _zygotes[key]


class PreloadedStart:
    """Spawner mixin: fork the server from a zygote instead of ``Popen``.

    Placed just before ``LocalProcessSpawner`` in the MRO. Active when the
    spawner's ``preload_servers`` is true; reproduces ``LocalProcessSpawner.start``
    (port, ``get_env()``, ``cmd + get_args()``, ``home_dir`` as the working
    folder) except the process creation, and leaves ``self.proc`` None with
    ``self.pid`` set, which ``LocalProcessSpawner.poll/stop`` and the saved state
    handle as for a server found again after a hub restart. Falls back to the
    normal start, with a warning, whenever the zygote cannot serve.
    """

    async def start(self):
        if not getattr(self, "preload_servers", False):
            return await super().start()
        try:
            return await self._preloaded_start()
        except Exception as e:
            self.log.warning(
                "Preloaded start of %s failed (%s: %s); starting it normally",
                self._log_name,
                type(e).__name__,
                e,
            )
            return await super().start()

    async def _preloaded_start(self):
        from jupyterhub.utils import random_port

        from jupyterhub_civis.spawner.venv_builder import interpreter

        prefix = (self.environment_record or {}).get("prefix")
        if not prefix or list(self.cmd) != [interpreter(prefix), "-m", SERVER_MODULE]:
            raise ZygoteError(f"custom server command {self.cmd!r}")
        if self.shell_cmd or self.popen_kwargs:
            raise ZygoteError("shell_cmd/popen_kwargs need Popen")
        if self.port == 0:
            self.port = random_port()
        env = self.get_env()
        argv = [*self.cmd, *self.get_args()]
        os.makedirs(self.home_dir, 0o755, exist_ok=True)
        self.log.info("Spawning (preloaded) %s", shlex.join(argv))
        pid = await zygote_for(argv[0], env, self.log).spawn(argv, env, self.home_dir)
        self.proc = None
        self.pid = pid
        return (self.ip or "127.0.0.1", self.port)


if __name__ == "__main__":
    zygote_main()
