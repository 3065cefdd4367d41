"""The spawn page's options form, rendered from the catalog."""

from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment as Jinja
from jinja2 import PackageLoader, select_autoescape

from jupyterhub_civis.spawner.catalog import Catalog


@lru_cache(maxsize=1)
def _template():
    jinja = Jinja(
        loader=PackageLoader("jupyterhub_civis.spawner", "templates"),
        autoescape=select_autoescape(default=True),
    )
    return jinja.get_template("options_form.html")


def render_options_form(
    catalog: Catalog,
    current: dict,
    *,
    allow_custom_image: bool,
    image_pattern: str | None = None,
    notice: str = "",
) -> str:
    """HTML for the inside of JupyterHub's spawn form.

    ``current`` is the server's remembered ``user_options``; its environment is
    pre-selected. When the remembered environment left the catalog, nothing is
    pre-selected and ``notice`` asks the user to choose again.
    """
    selected = current.get("environment")
    if notice:
        selected = None
    elif catalog.get(selected or "") is None:
        selected = catalog.default.name
    return _template().render(
        environments=catalog.environments,
        selected=selected,
        image=current.get("image") or "",
        packages="\n".join(current.get("packages") or []),
        allow_custom_image=allow_custom_image,
        image_pattern=image_pattern,
        notice=notice,
    )
