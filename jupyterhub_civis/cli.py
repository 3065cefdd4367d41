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


def _prepuller(args) -> int:
    from jupyterhub_civis.prepuller import load_config, render, with_built_images
    from jupyterhub_civis.spawner import CatalogError
    from jupyterhub_civis.spawner.image_builder import ImageBuildError
    from jupyterhub_civis.spawner.kube_config import catalog_from_config

    try:
        config = load_config(args.source)
        catalog = catalog_from_config(config)
        if args.build:
            catalog = with_built_images(catalog, config)
    except (CatalogError, ImageBuildError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    options = {}
    if args.format == "daemonset":
        options = {"namespace": args.namespace, "name": args.name}
        if args.node_selector:
            options["node_selector"] = dict(pair.split("=", 1) for pair in args.node_selector)
    sys.stdout.write(render(catalog, args.format, **options))
    return 0


def _service(args) -> int:
    from jupyterhub_civis.service.app import main as service_main

    service_main(args.service_args)
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["service"]:  # everything after "service" is the service's own options
        return _service(argparse.Namespace(service_args=argv[1:]))
    parser = argparse.ArgumentParser(prog="jupyterhub-civis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser(
        "check-config", help="validate the environment catalog of a jupyterhub_config.py"
    )
    check.add_argument("config", help="path to jupyterhub_config.py")
    check.set_defaults(func=_check_config)
    pull = sub.add_parser(
        "prepuller",
        help="print pre-puller config for every catalog image (z2jh values or a DaemonSet)",
    )
    pull.add_argument("source", help="jupyterhub_config.py, or a z2jh values file with hub.config")
    pull.add_argument("--format", choices=["values", "daemonset"], default="values",
                      help="values: z2jh prePuller.extraImages (default); daemonset: a manifest")
    pull.add_argument("--namespace", default="jupyterhub", help="DaemonSet namespace")
    pull.add_argument("--name", default="civis-image-puller", help="DaemonSet name")
    pull.add_argument("--node-selector", action="append", metavar="KEY=VALUE",
                      help="only pull on nodes with this label (repeatable)")
    pull.add_argument("--build", action="store_true",
                      help="list environments with packages as their built images (by digest), "
                      "built now with the configured image builder if missing "
                      "(CivisKubeSpawner.image_builder, DockerImageBuilder.*)")
    pull.set_defaults(func=_prepuller)
    svc = sub.add_parser(
        "service",
        help="run the civis JupyterHub managed service (durable result store); "
        "options: --CivisService.<trait>=… (see `jupyterhub-civis service --help-all`)",
    )
    svc.add_argument("service_args", nargs=argparse.REMAINDER)
    svc.set_defaults(func=_service)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
