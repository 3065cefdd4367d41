"""The spawn page's options form, rendered from the catalog, and its error messages."""

from __future__ import annotations

import re
from functools import lru_cache

from jinja2 import Environment as Jinja
from jinja2 import PackageLoader, select_autoescape

from jupyterhub_civis.errors import InvalidInput
from jupyterhub_civis.spawner.catalog import Catalog
from jupyterhub_civis.spawner.options import UNLISTED_SUFFIX, chosen_options, environment_name

#: How the form names the fields an error can be about.
FIELD_LABELS = {
    "environment": "Environment",
    "profile": "Environment",
    "image": "Custom image",
    "packages": "Extra packages",
}
_PACKAGE_ITEM = re.compile(r"^packages\[(\d+)\]$")


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

    ``current`` is the server's remembered ``user_options`` (either form);
    its environment and option choices are pre-selected. When the
    remembered environment left the catalog, nothing is pre-selected and
    ``notice`` asks the user to choose again.
    """
    selected = environment_name(current)
    if notice:
        selected = None
    elif catalog.get(selected or "") is None:
        selected = catalog.default.name
    chosen = chosen_options(current) if selected == environment_name(current) else {}
    return _template().render(
        environments=catalog.environments,
        selected=selected,
        chosen=chosen,
        unlisted_suffix=UNLISTED_SUFFIX,
        image=current.get("image") or "",
        packages="\n".join(current.get("packages") or []),
        allow_custom_image=allow_custom_image,
        image_pattern=image_pattern,
        notice=notice,
    )


def form_message(error: InvalidInput, package_line_numbers: list[int]) -> str:
    """``error`` in the spawn form's terms: ``Extra packages, line 2: …`` for ``packages[1]``."""
    item = _PACKAGE_ITEM.match(error.field)
    if item and int(item.group(1)) < len(package_line_numbers):
        return f"Extra packages, line {package_line_numbers[int(item.group(1))]}: {error.message}"
    field = error.field.removeprefix("options.").removesuffix(UNLISTED_SUFFIX)
    return f"{FIELD_LABELS.get(field, field)}: {error.message}"
