"""How the Kubernetes backend adds packages to an environment: reject, install on
start (an init container) or a built image (``image_builder``)."""

from __future__ import annotations

from traitlets import Bool, Enum, Type, Unicode
from traitlets.config import Configurable


class KubePackages(Configurable):
    """The package settings of ``CivisKubeSpawner`` (set them as ``c.CivisKubeSpawner.…``)."""

    extra_packages = Enum(
        ["reject", "install-on-start"],
        default_value="reject",
        config=True,
        help="""
        What to do with extra packages (a user's ``packages`` option or a
        catalog entry's ``packages``) on Kubernetes when ``image_builder`` is
        off (with it on, packages always go into a built image).

        - ``"reject"`` (default): refuse the spawn with a message naming the
          packages and telling the user to pick an environment whose image has
          them. Catalog entries with ``packages`` are a configuration error.
        - ``"install-on-start"``: an init container running the environment's
          image installs them with ``pip install --target`` into
          ``packages_dir/<content id>``, which is added to ``PYTHONPATH`` of
          the server and its kernels. The folder is reused by the next start
          with the same image and packages when ``packages_dir`` is on
          persistent storage (the default is under the home volume). Needs
          pip in the image and network access to the package index from pods.
        """,
    )

    image_builder = Bool(
        False,
        config=True,
        help="""
        Build an image per environment with packages (catalog entries or a
        user's ``packages``) instead of installing them when each pod starts:
        ``builder_class`` builds FROM the environment's image by digest, adds
        one layer with the packages, pushes ``<registry>/<prefix>:<content id>``
        and the pod runs that image by digest, with no init container. The same
        environment is built once; a second request is a registry lookup. Takes
        precedence over ``extra_packages``. Configure the builder as
        ``c.DockerImageBuilder.docker_url`` (a ``tcp://`` builder daemon,
        docs/kubernetes.md) and ``.registry`` (one the nodes pull from).
        """,
    )

    builder_class = Type(
        "jupyterhub_civis.spawner.docker_builder.DockerImageBuilder",
        klass="jupyterhub_civis.spawner.image_builder.ImageBuilder",
        config=True,
        help="The ``ImageBuilder`` used when ``image_builder`` is on.",
    )

    packages_dir = Unicode(
        "/home/jovyan/.civis/packages",
        config=True,
        help="""
        Folder in the pod where ``extra_packages = "install-on-start"`` puts
        installed packages, one subfolder per image + package set. Put it on
        the home volume to reuse installs across restarts; if no volume mount
        covers it, an emptyDir volume is added (installed on every start).
        """,
    )
