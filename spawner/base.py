"""The environment layer that every Civis spawner backend shares.

``CivisSpawner`` is a mixin placed before a JupyterHub spawner class::

    class CivisLocalSpawner(CivisSpawner, SimpleLocalProcessSpawner): ...

It owns everything about *which environment* a named server runs: the admin
catalog, validation of ``user_options`` (REST API) and of the spawn form, the
per-server memory of the choice, progress messages and the environment
variables that tell a server what it runs. Operators configure it as
``c.CivisSpawner.<trait>``; those settings apply to every backend.

The contract for a backend
--------------------------
A backend subclass provides:

``requires_image`` (class attribute)
    True for container backends: every catalog entry must name an image.

``async prepare_environment(self, environment, selection, emit) -> dict``
    Make the chosen environment runnable for this server (build a venv,
    choose an image, …) and return its record, a JSON-able dict with at
    least ``name``, ``id`` and ``packages`` (and ``image`` for containers).
    ``emit(message)`` reports a progress line on the spawn page.
    Raise ``EnvironmentUnavailable`` with a message for the user when the
    environment cannot be made; nothing half-made may be left behind.

The backend must not override ``start()`` other than through
``super().start()``: the mixin resolves and prepares the environment, then
calls the backend spawner's own ``start()``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

from jupyterhub.spawner import Spawner
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default, validate
from traitlets.config import Configurable

from jupyterhub_civis import envvars
from jupyterhub_civis.errors import InvalidInput
from jupyterhub_civis.spawner.catalog import Catalog, CatalogError, Environment, parse_catalog
from jupyterhub_civis.spawner.form import form_message, render_options_form
from jupyterhub_civis.spawner.image_builder import image_repository
from jupyterhub_civis.spawner.options import (
    PROFILE_KEY,
    Selection,
    environment_name,
    options_from_form,
    package_lines,
    parse_user_options,
)
from jupyterhub_civis.spawner.pinning import Pinned, pin_image
from jupyterhub_civis.spawner.readiness import wait_until_answering
from jupyterhub_civis.spawner.refusal import refused
from jupyterhub_civis.spawner.rejections import EnvironmentUnavailable, SpawnRejected

STATE_KEY = "civis"

__all__ = ["CivisSpawner", "EnvironmentUnavailable", "SpawnRejected", "STATE_KEY"]


class CivisSpawner(Configurable):
    """Mixin: per-server environment selection shared by every Civis backend."""

    requires_image = False

    environments = List(
        Dict(),
        config=True,
        help="""
        The catalog of environments users choose from, one dict per environment.
        Empty (default): the backend's own default (the local backend: the
        hub's Python; Kubernetes: ``KubeSpawner.profile_list`` if set, else
        the configured ``KubeSpawner.image``).

        Fields:

        - ``name`` (required): slug used in the API and stored per server, e.g. ``"python"``.
        - ``display_name``, ``description``: shown on the spawn page.
        - ``image``: container image run by the Kubernetes and Docker backends
          (required there; ignored by the local backend).
        - ``local_prefix``: path of a Python environment on the hub's machine
          used by the local backend as the base (default: the hub's own).
        - ``packages``: pip requirements layered on top of the base by the
          local backend, e.g. ``["pandas>=2.2"]``.
        - ``resources``: any of ``cpu_limit``, ``cpu_guarantee`` (cores),
          ``mem_limit``, ``mem_guarantee`` (bytes or strings like ``"2G"``).
        - ``default``: exactly one entry is the default (optional with one entry).

        Checked when the hub loads the config (the shipped configs call
        ``check_config``) and on every spawn; errors name the entry and field.
        """,
    )

    allowed_images = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""
        Regular expression for custom images users may type on the spawn page
        or pass as ``user_options["image"]``. The whole image reference must
        match (it is anchored for you), e.g.
        ``r"registry\\.example\\.com/team/[a-z0-9-]+:[0-9.]+"``.

        ``None`` (default) disables custom images: only catalog environments run.
        """,
    )

    max_packages = Integer(
        30,
        config=True,
        help="Most extra packages a user may add to one server's environment.",
    )

    allow_direct_references = Bool(
        False,
        config=True,
        help="""
        Allow extra packages given as direct URL references (``pkg @ https://…``).
        Off by default: such references make the hub fetch arbitrary URLs.
        """,
    )

    ready_check_interval = Float(
        0.05,
        config=True,
        help="""
        Seconds between checks that a just-started server answers, made by the
        spawner before it hands the server to the hub. The hub's own check backs
        off exponentially (0.2 s, 0.4 s, 0.8 s, ...), which can add seconds to
        every spawn; this check makes the hub's first try succeed. 0 disables it.
        """,
    )

    selection = Dict(help="The validated choice for this server (persisted in the spawner state).")
    environment_record = Dict(
        help="What this server runs: name, id, image, packages (set by prepare_environment)."
    )

    @validate("environments")
    def _validate_environments(self, proposal):
        if proposal.value:
            try:
                parse_catalog(proposal.value, require_image=self.requires_image)
            except CatalogError as e:
                raise CatalogError(f"{type(self).__name__}: {e}") from None
        return proposal.value

    @validate("allowed_images")
    def _validate_allowed_images(self, proposal):
        if proposal.value is not None:
            try:
                re.compile(proposal.value)
            except re.error as e:
                raise ValueError(f"CivisSpawner.allowed_images is not a valid regex: {e}") from None
        return proposal.value

    @default("apply_user_options")
    def _default_apply_user_options(self):
        # JupyterHub runs this hook before pre_spawn_hook and start(); an
        # HTTPError raised here reaches the API caller and the spawn page as is.
        return lambda spawner, user_options: spawner.resolve_selection()

    def default_environments(self) -> list[dict]:
        """The catalog when none is configured (backends override)."""
        return [
            {
                "name": "python",
                "display_name": "Python",
                "description": "The hub's default environment.",
                "default": True,
            }
        ]

    def extra_environments(self) -> list[Environment]:
        """Environments from another configured source, known without awaiting (backends override)."""
        return []

    async def evaluate_extra_environments(self) -> list[Environment]:
        """Environments from another source, evaluated for this spawn (e.g. a callable)."""
        return self.extra_environments()

    def _catalog(self, extra) -> Catalog:
        entries = self.environments or ([] if extra else self.default_environments())
        return parse_catalog(entries, require_image=self.requires_image, extra=extra)

    @property
    def catalog(self) -> Catalog:
        """The catalog as configured (sources that need evaluating per user are left out)."""
        return self._catalog(self.extra_environments())

    async def get_catalog(self) -> Catalog:
        """The catalog this server chooses from."""
        return self._catalog(await self.evaluate_extra_environments())

    @classmethod
    def check_config(cls, config) -> Catalog:
        """Validate catalog settings from a traitlets config; raise CatalogError.

        Call it at the end of ``jupyterhub_config.py`` so a broken catalog stops
        the hub at start instead of at the first spawn.
        """
        return cls(config=config).catalog

    # ----- choosing --------------------------------------------------------------

    @property
    def _image_pattern(self):
        return re.compile(self.allowed_images) if self.allowed_images is not None else None

    async def resolve_selection(self) -> Selection:
        """Validate ``user_options`` (or reuse the remembered choice).

        The validated choice becomes the server's remembered choice only once
        its environment is ready (``start``). A failure leaves the remembered
        choice in place, in the spawner state and as the stored
        ``user_options``, and raises HTTP 400 naming the field.
        """
        raw = self.user_options
        remembered = self.selection or None
        if not raw and remembered:
            # an empty body means "start it as it was" on every JupyterHub line
            raw = dict(remembered)
        package_line_numbers = self._form_lines_for(raw)
        try:
            catalog = await self.get_catalog()
            selection = parse_user_options(
                raw,
                catalog,
                allowed_images=self._image_pattern,
                max_packages=self.max_packages,
                allow_direct_references=self.allow_direct_references,
                runs_images=self.requires_image,
            )
        except InvalidInput as e:
            self._restore_user_options(remembered)
            if (
                e.field in ("environment", PROFILE_KEY)
                and remembered
                and isinstance(raw, dict)
                and environment_name(raw) == environment_name(remembered)
            ):
                raise self.refuse(
                    SpawnRejected(
                        f"environment: {environment_name(remembered)!r}, which this server "
                        "used, is no longer offered on this hub; choose another environment "
                        "on the spawn page"
                    )
                ) from None
            if package_line_numbers is not None:  # the spawn form: speak in its terms
                raise self.refuse(SpawnRejected(form_message(e, package_line_numbers))) from None
            raise self.refuse(SpawnRejected(str(e))) from None
        self._restore_user_options(selection.to_user_options())
        self._resolved = (selection, catalog.get(selection.environment))
        return selection

    def refuse(self, rejection: SpawnRejected) -> SpawnRejected:
        """Account for a refused request (one warning line, no phantom server); returns it."""
        return refused(self, rejection)

    def _restore_user_options(self, options):
        self.user_options = dict(options) if options else {}
        orm_spawner = getattr(self, "orm_spawner", None)
        if orm_spawner is not None:
            orm_spawner.user_options = dict(options) if options else {}

    def _form_lines_for(self, raw):
        """Line numbers of the form's package lines, when ``raw`` came from the spawn form."""
        origin, self._form_origin = getattr(self, "_form_origin", None), None
        if origin is not None and origin[0] == raw:
            return origin[1]
        return None

    # ----- the spawn page -----------------------------------------------------------

    @default("options_form")
    def _default_options_form(self):
        return self._render_options_form

    async def _render_options_form(self, spawner=None):
        current = (
            self.selection
            or (getattr(self, "orm_spawner", None) and self.orm_spawner.user_options)
            or {}
        )
        catalog = await self.get_catalog()
        notice = ""
        name = environment_name(current)
        if name and catalog.get(name) is None:
            notice = (
                f"The environment {name!r} that this server used is no longer offered. "
                "Please choose another one."
            )
        return render_options_form(
            catalog,
            current,
            allow_custom_image=self.allowed_images is not None,
            image_pattern=self.allowed_images,
            notice=notice,
        )

    def options_from_form(self, formdata):
        options = options_from_form(formdata)
        packages = (formdata.get("packages") or [""])[0]
        # remembered for this request only, so errors can name the form's lines
        self._form_origin = (options, [n for n, _ in package_lines(packages)])
        return options

    # ----- starting -----------------------------------------------------------------

    async def start(self):
        self._progress_events = []
        self._progress_changed = asyncio.Event()
        self._progress_done = False
        started = time.monotonic()
        try:
            # resolved by the apply_user_options hook, unless an operator replaced it
            if not getattr(self, "_resolved", None):
                await self.resolve_selection()
            (selection, environment), self._resolved = self._resolved, None
            self.apply_resources(environment)
            self.emit_progress(f"Resolving environment {environment.display_name}", 5)
            try:
                record = await self.prepare_environment(environment, selection, self.emit_progress)
            except SpawnRejected as e:
                # a failed build must not replace the choice the server had
                self._restore_user_options(self.selection)
                raise self.refuse(e) from None
            self.environment_record = record
            self.selection = selection.to_user_options()
            extra = f" with {', '.join(selection.packages)}" if selection.packages else ""
            self.emit_progress(
                f"Environment {environment.display_name}{extra} ready in "
                f"{time.monotonic() - started:.1f} s; starting the server",
                70,
            )
        finally:
            self._progress_done = True
            self._progress_changed.set()
        url = await super().start()
        if self.ready_check_interval > 0:
            await self._wait_until_answering(url)
        return url

    async def _wait_until_answering(self, url) -> None:
        await wait_until_answering(url, self.poll, self.http_timeout, self.ready_check_interval)

    def pin_image(self, selection, environment, base_image, builder=None) -> Pinned | None:
        """The image ``selection.image_digest`` pins a container backend's server to
        (``pinning.py``), ``None`` without one; a digest the operator does not allow is
        a 400 naming the field."""
        if not selection.image_digest:
            return None
        try:
            return pin_image(
                selection.image_digest,
                base_image,
                environment=environment.name,
                builder_repository=(
                    image_repository(builder.registry, builder.image_prefix)
                    if builder is not None and builder.registry
                    else None
                ),
                allowed_images=self._image_pattern,
            )
        except InvalidInput as e:
            raise SpawnRejected(str(e)) from None

    def apply_resources(self, environment: Environment) -> None:
        for key, value in environment.resources.items():
            setattr(self, key, value)

    async def prepare_environment(self, environment, selection, emit) -> dict:
        raise NotImplementedError("backends implement prepare_environment")

    def emit_progress(self, message: str, progress: int | None = None) -> None:
        if progress is None:
            progress = self._progress_events[-1]["progress"] if self._progress_events else 5
        self._progress_events.append({"progress": progress, "message": message})
        self._progress_changed.set()
        self.log.debug("%s: %s", self._log_name, message)

    async def progress(self):
        """Environment steps first, then whatever the backend spawner reports."""
        sent = 0
        while True:
            events = getattr(self, "_progress_events", [])
            while sent < len(events):
                yield events[sent]
                sent += 1
            if getattr(self, "_progress_done", True):
                break
            self._progress_changed.clear()
            await self._progress_changed.wait()
        backend_progress = super().progress
        if getattr(backend_progress, "__func__", None) is not Spawner.progress:
            # the backend reports real steps (KubeSpawner: pod events); the base
            # class's generic "Spawning server..." at 50% would move the bar back
            async for event in backend_progress():
                yield event

    def environment_env(self) -> dict:
        record = self.environment_record or {}
        if not record:
            return {}
        env = {
            envvars.ENVIRONMENT: record["name"],
            envvars.ENVIRONMENT_ID: record.get("id") or "",
            envvars.ENVIRONMENT_JSON: json.dumps(record, sort_keys=True),
        }
        if record.get("image"):
            env[envvars.IMAGE] = record["image"]
        return env

    def get_env(self):
        env = super().get_env()
        env.update(self.environment_env())
        return env

    # ----- state --------------------------------------------------------------------

    def get_state(self):
        state = super().get_state()
        state[STATE_KEY] = {"selection": self.selection, "environment": self.environment_record}
        return state

    def load_state(self, state):
        super().load_state(state)
        saved = state.get(STATE_KEY) or {}
        self.selection = saved.get("selection") or {}
        self.environment_record = saved.get("environment") or {}

    def clear_state(self):
        # the choice is remembered across restarts; only what ran is forgotten
        super().clear_state()
        self.environment_record = {}

