"""Docker backend: every named server is a container from its environment's image.

``CivisDockerSpawner`` is DockerSpawner (dockerspawner 13+) with the Civis
environment layer in front. It keeps DockerSpawner's start/stop/poll and
state and adds:

- environments with packages run from an image built once per content id by
  the ``builder_class`` (``docker_builder.py``); a catalog environment without
  packages runs its own image;
- images from ``user_options`` only through ``CivisSpawner.allowed_images``
  (an anchored regex; DockerSpawner's own list is not consulted: see
  ``check_allowed`` — its CVE-2023-48311 was a missing default here);
- containers run as ``container_user`` (never root), never privileged, with
  every capability dropped and ``no-new-privileges``; the only mount is the
  server's named volume at ``home_mount_path`` (``docker_policy.py``);
- memory/CPU limits from the catalog entry's ``resources``;
- the image digest the server runs is recorded in the server's state and
  in ``CIVIS_ENVIRONMENT_JSON`` for the notebooks it saves;
- the catalog's images are pulled (and built) when the hub starts and
  whenever a spawn sees a changed catalog (``prepull.py``).

Requires the ``docker`` extra: ``pip install jupyterhub-civis[docker]``.
"""

from __future__ import annotations

from docker.errors import APIError, NotFound
from dockerspawner import DockerSpawner
from jupyterhub.utils import exponential_backoff, maybe_future
from tornado import web
from traitlets import Bool, Type, Unicode, default
from traitlets.utils.importstring import import_item

from jupyterhub_civis.spawner.base import CivisSpawner
from jupyterhub_civis.spawner.catalog import Catalog, CatalogError
from jupyterhub_civis.spawner.docker_builder import DockerImageBuilder
from jupyterhub_civis.spawner.docker_policy import (
    enforce_container_policy,
    image_record,
    settings_problems,
)
from jupyterhub_civis.spawner.docker_prepull import catalog_fingerprint, schedule_prepull
from jupyterhub_civis.spawner.environment_images import image_with_packages
from jupyterhub_civis.spawner.image_builder import ImageBuilder, shared_builder
from jupyterhub_civis.spawner.requirements import environment_id


class CivisDockerSpawner(CivisSpawner, DockerSpawner):
    """Named servers as Docker containers, one image per environment, on one Docker host."""

    requires_image = True

    builder_class = Type(
        DockerImageBuilder,
        klass=ImageBuilder,
        config=True,
        help="""
        Builds environment images (catalog entries or users with ``packages``)
        and pushes them to a registry; configure it as
        ``c.DockerImageBuilder.registry`` etc. Any ``ImageBuilder`` subclass
        can replace it (e.g. one that asks a cluster build service).
        """,
    )

    container_user = Unicode(
        "1000",
        config=True,
        help="""
        User (``uid`` or ``uid:gid``) notebook containers run as. Root
        (``0``/``root``) is refused: containers are never root, never
        privileged and drop every capability.
        """,
    )

    home_mount_path = Unicode(
        "/home/jovyan",
        config=True,
        help="Where each server's named volume (``volume_name_template``) is mounted.",
    )

    volume_name_template = Unicode(
        "civis-{username}--{servername}",
        config=True,
        help="""
        Docker volume holding one server's files (DockerSpawner template
        fields: ``{username}``, ``{servername}``, ``{prefix}``). It survives
        stopping the server and restarts of the hub; it is the only thing
        mounted into the container unless ``DockerSpawner.volumes`` adds more
        named volumes.
        """,
    )

    allow_host_mounts = Bool(
        False,
        config=True,
        help="""
        Allow ``DockerSpawner.volumes``/``mounts`` to bind host paths into
        notebook containers. Off (default): a host path in them fails every
        spawn with a message naming it.
        """,
    )

    prepull = Bool(
        True,
        config=True,
        help="""
        Pull every catalog image, and build those of catalog entries with
        ``packages``, in the background when the hub starts (from
        ``check_config`` at the end of the config file) and when a spawn sees
        a catalog that changed; first spawns then find their image present.
        """,
    )

    @default("prefix")
    def _default_prefix(self):
        return "civis"

    @default("remove")
    def _default_remove(self):
        # a stopped server's container goes; its files stay in the named volume,
        # and the next start runs the environment chosen then
        return True

    @default("volumes")
    def _default_volumes(self):
        return {self.volume_name_template: self.home_mount_path}

    @default("use_internal_ip")
    def _default_use_internal_ip(self):
        # the proxy reaches the container's own address on the bridge: no port published
        # on the host, and a TCP connect means the server listens (a published port is
        # accepted by Docker's proxy before the server is up, defeating the ready check)
        return True

    @default("pull_policy")
    def _default_pull_policy(self):
        return "ifnotpresent"

    @property
    def builder(self) -> ImageBuilder:
        return shared_builder(self.builder_class, self.config, self.log)

    # ----- configuration ----------------------------------------------------------------

    @classmethod
    def check_config(cls, config) -> Catalog:
        """Validate the catalog and the container settings; start pre-pulling the catalog."""
        catalog = super().check_config(config)
        own = {**config.get("DockerSpawner", {}), **config.get(cls.__name__, {})}
        host_config = own.get("extra_host_config", {})
        problems = settings_problems(
            user=own.get("container_user", "1000"),
            extra_host_config=host_config if isinstance(host_config, dict) else {},
            network_name=own.get("network_name", "bridge"),
        )
        if problems:
            raise CatalogError(f"{cls.__name__}: " + "; ".join(problems))
        if own.get("prepull", True):
            builder_class = own.get("builder_class", DockerImageBuilder)
            if isinstance(builder_class, str):
                builder_class = import_item(builder_class)
            schedule_prepull(catalog, shared_builder(builder_class, config))
        return catalog

    async def get_catalog(self) -> Catalog:
        catalog = await super().get_catalog()
        if self.prepull and catalog_fingerprint(catalog) != getattr(type(self), "_prepulled", None):
            type(self)._prepulled = catalog_fingerprint(catalog)
            schedule_prepull(catalog, self.builder)
        return catalog

    # ----- the environment's image ------------------------------------------------------

    async def prepare_environment(self, environment, selection, emit) -> dict:
        base = selection.image or environment.image
        packages = tuple(sorted(set(environment.packages) | set(selection.packages)))
        pinned = self.pin_image(selection, environment, base, self.builder)
        if pinned:
            base = pinned.image
        record = {
            "name": environment.name,
            "image": base,
            "packages": list(packages),
            "extra_packages": list(selection.packages),
        }
        if packages and not (pinned and pinned.built):  # a built environment image has them
            built = await image_with_packages(self.builder, base, packages, emit)
            record.update(image=built.tag, base_image=base, image_digest=built.pinned)
        record["id"] = record["image"].rsplit(":", 1)[-1] if packages else environment_id(base, ())
        self._accepted_image = selection.image
        self.image = record["image"]
        try:
            local = await self.docker("inspect_image", self.image)
            emit(f"Image {self.image} already present", 50)
        except NotFound:
            emit(f"Pulling image {self.image}", 50)
            await self.pull_image(self.image)
            local = await self.docker("inspect_image", self.image)
        record.update(image_record(record["image"], local))
        return record

    async def check_allowed(self, image):
        """DockerSpawner's check of ``user_options["image"]``: the environment layer
        validated it against ``CivisSpawner.allowed_images`` and chose what runs."""
        if image != getattr(self, "_accepted_image", None):
            raise web.HTTPError(400, "image: not an image this hub accepted for this server")
        return self.image

    # ----- the container ----------------------------------------------------------------

    def docker(self, method, *args, **kwargs):
        if method == "create_container":
            kwargs = enforce_container_policy(
                kwargs, user=self.container_user, allow_host_mounts=self.allow_host_mounts
            )
        return super().docker(method, *args, **kwargs)

    async def delete_forever(self):
        """Removing a named server deletes its volume, and the files in it, too."""
        await maybe_future(super().delete_forever())
        name = self.format_volume_name(self.volume_name_template, self)

        async def removed():
            try:
                await self.docker("remove_volume", name)
            except NotFound:
                pass
            except APIError as e:
                if e.status_code == 409:  # the stopped container is still being removed
                    return False
                raise
            return True

        await exponential_backoff(removed, f"volume {name} still in use", timeout=60)
        self.log.info("Removed the volume %s of %s", name, self._log_name)

    def get_env(self):
        env = super().get_env()
        env.update(self.environment_env())  # DockerSpawner's JUPYTER_IMAGE_SPEC stays too
        return env

