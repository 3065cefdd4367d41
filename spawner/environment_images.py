"""An environment's packages as a built image, for the container backends (Docker, Kubernetes)."""

from __future__ import annotations

from jupyterhub_civis.spawner.image_builder import BuiltImage, ImageBuilder, ImageBuildError
from jupyterhub_civis.spawner.rejections import EnvironmentUnavailable


async def image_with_packages(builder: ImageBuilder, base: str, packages, emit) -> BuiltImage:
    """The image of ``base`` + ``packages`` from ``builder`` (built once per content id);
    a failed build is a 400 with the installer's message and its log for the spawn page."""
    emit(f"Preparing the image with {', '.join(packages)}", 10)
    try:
        built = await builder.ensure(base, packages, on_line=emit)
    except ImageBuildError as e:
        raise EnvironmentUnavailable(str(e), detail=e.log[-4000:], bad_request=e.user_error) from None
    if not built.built:
        emit(f"Image {built.tag} is in the registry (built before)", 40)
    return built
