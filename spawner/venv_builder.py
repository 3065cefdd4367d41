"""Content-addressed Python environments layered on a base environment.

A built environment is a relocatable venv whose site-packages links the base
environment's site-packages through a ``.pth`` file, plus the requested
packages installed with ``uv``. It lives at ``<root>/<environment id>``.

Only what the base lacks goes into the layer: the requirements are resolved
(``uv pip compile``) with every base package the user did not name pinned to
the base's version, and of the result only the distributions the base does not
already have at that version are installed (``--no-deps``). A requested
package the base has at a fitting version installs nothing; naming a package
with a version the base does not have puts that version in the layer, where
it takes precedence over the base's. A layer is


* built once: a finished environment is reused by every server asking for it;
* single-flight: concurrent requests for the same id share one build;
* atomic: the build runs in ``<root>/.build-<id>-<random>`` and is renamed into
  place only after it succeeded; a failed or cancelled build is removed, and
  its ``uv`` process group is killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from jupyterhub_civis.spawner.requirements import environment_id

LineSink = Callable[[str], None]
MARKER = "civis-environment.json"


class BuildError(RuntimeError):
    """Installing the packages failed; ``log`` holds the installer's output."""

    def __init__(self, message: str, log: str):
        super().__init__(message)
        self.log = log


@lru_cache(maxsize=64)
def _site_packages(python: str) -> tuple[str, ...]:
    code = "import json, sysconfig; p = sysconfig.get_paths(); print(json.dumps([p['purelib'], p['platlib']]))"
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True)
    return tuple(dict.fromkeys(json.loads(out.stdout)))


def interpreter(prefix: str) -> str:
    return os.path.join(prefix, "bin", "python")


def base_fingerprint(prefix: str) -> str:
    """Identity of a base environment: its real path and its installed distributions.

    Upgrading a package in the base changes the fingerprint, so layered
    environments built on the old base are not reused by mistake.
    """
    real = os.path.realpath(prefix)
    dists = []
    for folder in _site_packages(interpreter(real)):
        if os.path.isdir(folder):
            dists.extend(n for n in os.listdir(folder) if n.endswith(".dist-info"))
    return json.dumps({"prefix": real, "dists": sorted(dists)})


def base_distributions(prefix: str) -> dict[str, str]:
    """``{canonical name: version}`` of the distributions installed in a base environment."""
    found = {}
    for folder in _site_packages(interpreter(os.path.realpath(prefix))):
        if not os.path.isdir(folder):
            continue
        for entry in os.listdir(folder):
            if entry.endswith(".dist-info") and "-" in entry:
                name, _, version = entry[: -len(".dist-info")].partition("-")
                found[canonicalize_name(name)] = version
    return found


def layer_plan(requirements, base: dict[str, str]) -> tuple[list[str], list[str]]:
    """``(to resolve, base pins)`` for a layer: requirements the base does not satisfy, and
    ``name==version`` constraints for every base package the user did not ask to change.

    Pure: ``base`` is ``base_distributions``. A requirement the base satisfies
    (name present, version within the specifier, no extras) is dropped and
    its base version pinned.
    """
    wanted, named = [], set()
    for text in requirements:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        have = base.get(name)
        if have is not None and not req.extras and not req.url and req.specifier.contains(have, prereleases=True):
            continue
        named.add(name)
        wanted.append(text)
    pins = [f"{name}=={version}" for name, version in sorted(base.items()) if name not in named]
    return wanted, pins


def missing_from_base(resolved: list[str], base: dict[str, str]) -> list[str]:
    """Lines ``name==version`` of a resolution that the base does not already provide."""
    missing = []
    for line in resolved:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, _, version = line.partition("==")
        if base.get(canonicalize_name(name.split("[", 1)[0].strip())) != version.split(";", 1)[0].strip():
            missing.append(line)
    return missing


@dataclass
class _Build:
    task: asyncio.Task
    sinks: list[LineSink] = field(default_factory=list)

    def emit(self, line: str) -> None:
        for sink in list(self.sinks):
            sink(line)


class LayeredVenvBuilder:
    """Builds and caches layered environments under ``root``."""

    def __init__(self, root: str, *, uv: str | None = None, timeout: float = 600, log=None):
        self.root = Path(root)
        self.uv = uv or _find_uv()
        self.timeout = timeout
        self.log = log
        self._builds: dict[str, _Build] = {}

    def environment_id(self, base_prefix: str, requirements) -> str:
        return environment_id(base_fingerprint(base_prefix), requirements)

    def path_for(self, env_id: str) -> Path:
        return self.root / env_id

    def is_built(self, env_id: str) -> bool:
        return (self.path_for(env_id) / MARKER).is_file()

    async def ensure(
        self, base_prefix: str, requirements, on_line: LineSink | None = None
    ) -> tuple[str, Path]:
        """Return ``(id, prefix)`` of the environment, building it if needed."""
        requirements = tuple(sorted(requirements))
        env_id = await asyncio.to_thread(self.environment_id, base_prefix, requirements)
        if self.is_built(env_id):
            return env_id, self.path_for(env_id)
        build = self._builds.get(env_id)
        if build is None:
            build = _Build(task=None)  # type: ignore[arg-type]
            build.task = asyncio.ensure_future(
                self._build(env_id, base_prefix, requirements, build)
            )
            build.task.add_done_callback(lambda _t: self._builds.pop(env_id, None))
            self._builds[env_id] = build
        elif on_line:
            on_line("Another server is building this environment; waiting for it")
        if on_line:
            build.sinks.append(on_line)
        try:
            # shield: one waiter giving up must not cancel the build the others wait for
            return env_id, await asyncio.shield(build.task)
        finally:
            if on_line in build.sinks:
                build.sinks.remove(on_line)

    async def _build(self, env_id: str, base_prefix: str, requirements, build: _Build) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=f".build-{env_id}-", dir=self.root))
        output: list[str] = []

        def sink(line: str) -> None:
            output.append(line)
            build.emit(line)

        try:
            # one deadline for the whole build: the operator's timeout bounds what a user waits
            async with asyncio.timeout(self.timeout):
                return await self._build_in(env_id, base_prefix, requirements, workdir, build, sink)
        except TimeoutError:
            raise BuildError(
                f"packages: installing {', '.join(requirements)} took longer than {self.timeout:.0f} s "
                "and was stopped; try fewer or lighter packages",
                "\n".join(output),
            ) from None
        except subprocess.CalledProcessError:
            # uv's "Using Python … environment at: <temporary folder>" is noise to a user
            tail = "\n".join(line for line in output[-40:] if not line.startswith("Using Python"))
            raise BuildError(
                f"packages: installing {', '.join(requirements)} failed:\n{tail}",
                "\n".join(output),
            ) from None
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    async def _build_in(self, env_id, base_prefix, requirements, workdir, build, sink) -> Path:
        target = self.path_for(env_id)
        base_python = interpreter(os.path.realpath(base_prefix))
        await self._run(
            [
                self.uv,
                "venv",
                "--relocatable",
                "--quiet",
                "--python",
                base_python,
                str(workdir / "venv"),
            ],
            sink,
        )
        venv = workdir / "venv"
        base_paths = await asyncio.to_thread(_site_packages, base_python)
        own_paths = await asyncio.to_thread(_site_packages, str(venv / "bin" / "python"))
        # addsitedir (not a bare path) so the base's own .pth files run too:
        # editable installs and namespace packages of the base stay importable
        (Path(own_paths[0]) / "_civis_base.pth").write_text(
            "".join(f"import site; site.addsitedir({p!r})\n" for p in base_paths)
        )
        if requirements:
            await self._install_missing(venv, base_python, requirements, workdir, build, sink)
        (venv / MARKER).write_text(
            json.dumps(
                {
                    "id": env_id,
                    "base": os.path.realpath(base_prefix),
                    "requirements": list(requirements),
                }
            )
        )
        try:
            os.rename(venv, target)
        except OSError:
            if not self.is_built(env_id):
                raise
            # another hub process finished the same build first: use theirs
        return target

    async def _install_missing(self, venv, base_python, requirements, workdir, build, sink):
        """Install what ``requirements`` need beyond the base (see the module docstring)."""
        base = await asyncio.to_thread(base_distributions, os.path.dirname(os.path.dirname(base_python)))
        wanted, pins = layer_plan(requirements, base)
        if not wanted:
            build.emit(f"{', '.join(requirements)}: already in the base environment")
            return
        python = str(venv / "bin" / "python")
        (workdir / "requirements.in").write_text("\n".join(wanted) + "\n")
        (workdir / "base.txt").write_text("\n".join(pins) + "\n")
        build.emit(f"Resolving {', '.join(wanted)} against the base environment")
        resolved = workdir / "resolved.txt"
        await self._run(
            [self.uv, "pip", "compile", "--quiet", "--no-header", "--no-annotate",
             "--python", python, "--constraint", str(workdir / "base.txt"),
             "--output-file", str(resolved), str(workdir / "requirements.in")],
            sink,
        )
        missing = missing_from_base(resolved.read_text().splitlines(), base)
        build.emit(f"Installing {', '.join(missing)}")
        await self._run(
            [self.uv, "pip", "install", "--no-deps", "--python", python, *missing], sink
        )

    async def _run(self, cmd: list[str], sink: LineSink) -> None:
        env = {**os.environ, "UV_NO_PROGRESS": "1", "NO_COLOR": "1"}
        env.pop("VIRTUAL_ENV", None)
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        try:
            async for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                if line:
                    sink(line)
            code = await proc.wait()
        except BaseException:
            _kill_group(proc)
            await proc.wait()
            raise
        if code != 0:
            raise subprocess.CalledProcessError(code, cmd)


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _find_uv() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except Exception:
        found = shutil.which("uv") or os.path.join(os.path.dirname(sys.executable), "uv")
        return found
