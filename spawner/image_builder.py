"""Content-addressed environment images: the builder interface and its shared rules.

An environment with packages becomes an image built FROM its base image *by
digest*, plus one layer installing the normalised requirements with ``uv``,
tagged ``<registry>/<image_prefix>:<content id>``. The content id covers the
base's digest and the sorted requirements, so the same request always names
the same tag: a second request is a registry lookup, never a build.

``ImageBuilder`` holds what every builder shares — the traits, the tag rule,
the single-flight table (concurrent requests for one tag share one build,
and one waiter giving up does not cancel it for the others) and the error
type. A builder implements ``resolve_base``, ``lookup`` and ``build``;
``DockerImageBuilder`` (``docker_builder.py``) is the one shipped. Spawners
pick one with their ``builder_class`` trait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Counter
from traitlets import Float, Unicode, default
from traitlets.config import LoggingConfigurable

from jupyterhub_civis import envvars
from jupyterhub_civis.spawner.requirements import environment_id, normalise_requirements

LineSink = Callable[[str], None]

IMAGE_BUILDS = Counter(
    "civis_image_builds",
    "Environment images built (a request whose image was already in the registry is not "
    "counted), by outcome: ok, failed, timeout.",
    ["outcome"],
)


class ImageBuildError(RuntimeError):
    """The image could not be built; the message is for the user, ``log`` the build's output."""

    def __init__(self, message: str, log: str = "", *, user_error: bool = True):
        super().__init__(message)
        self.log = log
        self.user_error = user_error


@dataclass(frozen=True)
class BuiltImage:
    """An environment image in the registry: its tag, its digest and whether this call built it."""

    tag: str
    digest: str
    built: bool = False

    @property
    def pinned(self) -> str:
        """``repository@sha256:…``: the exact image, for runtimes that pull."""
        return f"{self.tag.rsplit(':', 1)[0]}@{self.digest}"


@dataclass
class _Build:
    task: asyncio.Future
    sinks: list[LineSink] = field(default_factory=list)

    def emit(self, line: str) -> None:
        for sink in list(self.sinks):
            sink(line)


def image_repository(registry: str, prefix: str) -> str:
    """``<registry>/<prefix>``: where environment images are pushed (pure)."""
    return "/".join(p.strip("/") for p in (registry, prefix) if p)


def image_tag(registry: str, prefix: str, base_digest_ref: str, requirements) -> str:
    """``<registry>/<prefix>:<content id>`` of an environment image (pure)."""
    repository = image_repository(registry, prefix)
    return f"{repository}:{environment_id(base_digest_ref, requirements)}"


class ImageBuilder(LoggingConfigurable):
    """Builds environment images and pushes them to a registry (base class)."""

    registry = Unicode(
        config=True,
        help="""
        Registry the environment images are pushed to and pulled from, as
        ``host[:port]``, e.g. ``registry.example.com`` or ``127.0.0.1:5000``.
        The daemon that builds (and every node that runs them) must be able to
        push/pull there; for a registry with credentials, log the daemon in
        (``docker login``) or give ``DockerImageBuilder.auth_config``.
        Default: the ``CIVIS_IMAGE_REGISTRY`` environment variable.
        """,
    )

    image_prefix = Unicode(
        "civis/environment",
        config=True,
        help="""
        Repository path under ``registry`` for environment images: an
        environment is ``<registry>/<image_prefix>:<content id>``.
        """,
    )

    build_timeout = Float(
        900,
        config=True,
        help="""
        Seconds one build (install plus push) may take before it is stopped
        and the spawn fails. ``Spawner.start_timeout`` must be larger.
        """,
    )

    @default("registry")
    def _default_registry(self):
        import os

        return os.environ.get(envvars.IMAGE_REGISTRY, "")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._builds: dict[str, _Build] = {}

    # ----- what a builder implements -------------------------------------------------

    async def resolve_base(self, image: str) -> str:
        """``repository@sha256:…`` of ``image`` as the registry has it now."""
        raise NotImplementedError

    async def lookup(self, tag: str) -> str | None:
        """The digest of ``tag`` in the registry, or None when it is not there."""
        raise NotImplementedError

    async def build(self, base_ref: str, requirements: tuple[str, ...], tag: str, emit: LineSink) -> str:
        """Build ``tag`` FROM ``base_ref`` with ``requirements``, push it, return its digest.

        Must leave no tag behind on failure, timeout or cancellation.
        """
        raise NotImplementedError

    async def present_locally(self, image: str) -> bool:
        """Whether the daemon next to this builder already has ``image``."""
        return False

    async def pull(self, image: str) -> None:
        """Make ``image`` present on the daemon next to this builder (pre-pulling)."""

    # ----- shared ----------------------------------------------------------------------

    async def ensure(self, base_image: str, requirements, on_line: LineSink | None = None) -> BuiltImage:
        """The environment image for ``base_image`` + ``requirements``, built if missing."""
        if not self.registry:
            raise ImageBuildError(
                f"{type(self).__name__}.registry is not set; tell your hub administrator",
                user_error=False,
            )
        requirements = normalise_requirements(requirements)
        emit = on_line or (lambda line: None)
        base_ref = await self.resolve_base(base_image)
        tag = image_tag(self.registry, self.image_prefix, base_ref, requirements)
        build = self._builds.get(tag)
        if build is None:
            digest = await self.lookup(tag)
            if digest:
                return BuiltImage(tag, digest, built=False)
            build = self._builds.get(tag)  # another spawn may have started it meanwhile
        if build is None:
            build = _Build(task=None)  # type: ignore[arg-type]
            build.task = asyncio.ensure_future(self._counted(base_ref, requirements, tag, build))
            build.task.add_done_callback(lambda _t: self._builds.pop(tag, None))
            self._builds[tag] = build
        else:
            emit("Another server is building this environment's image; waiting for it")
        build.sinks.append(emit)
        try:
            digest = await asyncio.shield(build.task)
        finally:
            if emit in build.sinks:
                build.sinks.remove(emit)
        return BuiltImage(tag, digest, built=True)

    async def _counted(self, base_ref, requirements, tag, build: _Build) -> str:
        self.log.info("Building image %s FROM %s with %s", tag, base_ref, ", ".join(requirements))
        build.emit(f"Building image {tag} with {', '.join(requirements)}")
        try:
            async with asyncio.timeout(self.build_timeout):
                digest = await self.build(base_ref, requirements, tag, build.emit)
        except TimeoutError:
            IMAGE_BUILDS.labels(outcome="timeout").inc()
            raise ImageBuildError(
                f"packages: building the image with {', '.join(requirements)} took longer than "
                f"{self.build_timeout:.0f} s and was stopped; try fewer or lighter packages"
            ) from None
        except BaseException:
            IMAGE_BUILDS.labels(outcome="failed").inc()
            raise
        IMAGE_BUILDS.labels(outcome="ok").inc()
        self.log.info("Built and pushed %s (%s)", tag, digest)
        return digest


_shared: dict[tuple, ImageBuilder] = {}


def shared_builder(builder_class: type[ImageBuilder], config, log=None) -> ImageBuilder:
    """One builder per class and configuration in the hub process, so every spawn and the
    pre-puller share its single-flight table."""
    builder = builder_class(config=config, log=log) if log else builder_class(config=config)
    key = (builder_class, *(repr(getattr(builder, n)) for n in sorted(builder.trait_names(config=True))))
    return _shared.setdefault(key, builder)
