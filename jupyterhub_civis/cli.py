"""``jupyterhub-civis``: operator commands for the bundle."""

from __future__ import annotations

import argparse
import json
import sys


def _check_config(args) -> int:
    import os

    from traitlets.config import PyFileConfigLoader
    from traitlets.utils.importstring import import_item

    from jupyterhub_civis.spawner import CatalogError

    loader = PyFileConfigLoader(
        os.path.basename(args.config), path=os.path.dirname(os.path.abspath(args.config))
    )
    config = loader.load_config()
    spawner_class = config.JupyterHub.get(
        "spawner_class", "jupyterhub_civis.spawner.CivisLocalSpawner"
    )
    if isinstance(spawner_class, str):
        spawner_class = (
            import_item(spawner_class) if "." in spawner_class else _entry_point(spawner_class)
        )
    try:
        catalog = spawner_class.check_config(config)
    except CatalogError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps([env.__dict__ for env in catalog.environments], indent=2, default=list))
    return 0


def _entry_point(name: str):
    from importlib.metadata import entry_points

    (ep,) = entry_points(group="jupyterhub.spawners", name=name)
    return ep.load()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="jupyterhub-civis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser(
        "check-config", help="validate the environment catalog of a jupyterhub_config.py"
    )
    check.add_argument("config", help="path to jupyterhub_config.py")
    check.set_defaults(func=_check_config)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
