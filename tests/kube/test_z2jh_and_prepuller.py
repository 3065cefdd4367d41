"""helm-values/values.yaml against the z2jh chart's schema, the Python config it
carries loaded into a real JupyterHub config, and the prepuller's outputs."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from kube_support import chart_config, make_spawner, pod_for, validate
from traitlets.config import Config

from jupyterhub_civis.prepuller import (
    catalog_from_config,
    daemonset_manifest,
    load_catalog,
    z2jh_values,
)

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "helm-values" / "values.yaml"
LOCAL_CONFIG = ROOT / "config" / "kubernetes" / "jupyterhub_config.py"
Z2JH = Path(os.environ.get("CIVIS_Z2JH_DIR", ROOT.parent / "shared" / "z2jh"))


def helm_merge(base, override):
    """What helm does with -f files: dicts merge key by key, everything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = copy.deepcopy(base)
        for key, value in override.items():
            merged[key] = helm_merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


@pytest.fixture(scope="module")
def chart():
    if not (Z2JH / "values.schema.yaml").exists():
        if os.environ.get("CI"):
            pytest.fail(f"{Z2JH} is missing: CI must provide the z2jh chart's values and schema")
        pytest.skip(f"{Z2JH} (the z2jh chart's values.yaml and values.schema.yaml) is absent in this checkout")
    return (yaml.safe_load((Z2JH / "values.yaml").read_text()),
            yaml.safe_load((Z2JH / "values.schema.yaml").read_text()))


def ours():
    return yaml.safe_load(VALUES.read_text())


def test_values_merged_over_chart_defaults_validate_against_the_chart_schema(chart):
    defaults, schema = chart
    merged = helm_merge(defaults, ours())
    jsonschema.Draft7Validator(schema).validate(merged)
    with_prepuller = helm_merge(merged, z2jh_values(load_catalog(str(VALUES))))
    jsonschema.Draft7Validator(schema).validate(with_prepuller)
    assert with_prepuller["prePuller"]["extraImages"]["civis-scipy"]["name"] == "quay.io/jupyter/scipy-notebook"
    # the schema really is strict: a misspelt key fails
    broken = helm_merge(merged, {"singleuser": {"storrage": {}}})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(broken)


def hub_config_from_values(values) -> Config:
    """hub.config and hub.extraConfig as the chart's jupyterhub_config.py applies them,
    over config shaped as the chart's KubeSpawner settings."""
    c = chart_config()
    del c.CivisSpawner["environments"]
    for section, settings in values["hub"]["config"].items():
        c[section].merge(Config(settings))
    for _name, code in sorted(values["hub"].get("extraConfig", {}).items()):
        exec(compile(code, "hub.extraConfig", "exec"), {"c": c, "get_config": lambda: c})
    return c


@pytest.mark.hub
async def test_hub_config_loads_into_jupyterhub_and_makes_valid_pods():
    from jupyterhub.app import JupyterHub

    from jupyterhub_civis.spawner.kube import CivisKubeSpawner

    values = ours()
    app = JupyterHub(config=hub_config_from_values(values))
    assert app.spawner_class is CivisKubeSpawner  # "civis-kube" through the entry point
    assert app.allow_named_servers and app.named_server_limit_per_user == 5
    # the civis service: managed in the hub pod, reached on the hub Service's extra port
    (civis,) = [s for s in app.services if s["name"] == "civis"]
    assert civis["url"] == "http://hub:10101" and "service" in civis["command"]
    assert "--CivisService.ip=0.0.0.0" in civis["command"]
    assert not [r for r in app.load_roles if "civis" in r.get("services", [])]  # no Hub API scopes
    (user_role,) = [r for r in app.load_roles if r["name"] == "user"]
    assert "access:services!service=civis" in user_role["scopes"]
    assert values["hub"]["service"]["extraPorts"][0]["port"] == 10101
    assert [p["port"] for r in values["singleuser"]["networkPolicy"]["egress"] for p in r["ports"]] == [10101]
    for environment in ("python", "scipy"):
        spawner = make_spawner(app.config, user_options={"environment": environment})
        assert isinstance(spawner, app.spawner_class)
        assert spawner.start_timeout == 600 and spawner.storage_policy == "chart"
        assert "access:services!service=civis" in spawner.server_token_scopes
        pod = await pod_for(spawner)
        validate(pod)
        assert pod["metadata"]["labels"]["hub.jupyter.org/network-access-hub"] == "true"
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["CIVIS_SERVICE_URL"] == "http://hub:10101/services/civis/"


def test_config_for_installs_without_the_chart_checks_out():
    result = subprocess.run(
        [sys.executable, "-m", "jupyterhub_civis.cli", "check-config", str(LOCAL_CONFIG)],
        capture_output=True, text=True, check=True,
    )
    assert '"name": "scipy"' in result.stdout


def test_prepuller_command_outputs_values_and_a_valid_daemonset(tmp_path):
    config = tmp_path / "jupyterhub_config.py"
    digest = "sha256:" + "d" * 64
    config.write_text(
        "c.CivisSpawner.environments = [\n"
        " {'name': 'python', 'image': 'quay.io/jupyter/base-notebook:2025-01-06', 'default': True},\n"
        " {'name': 'same-image', 'image': 'quay.io/jupyter/base-notebook:2025-01-06'},\n"
        f" {{'name': 'gpu', 'image': 'quay.io/jupyter/pytorch-notebook@{digest}'}},\n"
        f" {{'name': 'both', 'image': 'registry.example.com:5000/nb:1.0@{digest}'}},\n"
        " {'name': 'nightly-build-with-a-rather-long-environment-name', 'image': 'nb:latest'},\n"
        "]\n"
        "c.CivisKubeSpawner.storage_policy = 'per-user'\n"
    )
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "jupyterhub_civis.cli", "prepuller", str(config), *args],
        capture_output=True, text=True, check=True,
    ).stdout
    values = yaml.safe_load(run())
    images = values["prePuller"]["extraImages"]
    rendered = {f"{v['name']}:{v['tag']}" for v in images.values()}  # how the chart renders them
    assert rendered == {
        "quay.io/jupyter/base-notebook:2025-01-06",
        f"quay.io/jupyter/pytorch-notebook@{digest}",
        f"registry.example.com:5000/nb:1.0@{digest}",
        "nb:latest",
    }
    assert all(len(f"image-pull-{key}") <= 63 for key in images)
    assert images["civis-python"]["pullPolicy"] == "IfNotPresent"

    daemonset = yaml.safe_load(run("--format", "daemonset", "--namespace", "jhub", "--node-selector", "pool=users"))
    validate(daemonset)
    spec = daemonset["spec"]["template"]["spec"]
    assert [c["image"] for c in spec["initContainers"]] == [
        "quay.io/jupyter/base-notebook:2025-01-06", f"quay.io/jupyter/pytorch-notebook@{digest}",
        f"registry.example.com:5000/nb:1.0@{digest}", "nb:latest"]
    assert spec["nodeSelector"] == {"pool": "users"}
    assert daemonset["metadata"]["namespace"] == "jhub"


def test_daemonset_rolls_when_the_catalog_changes():
    one = Config({"CivisSpawner": {"environments": [{"name": "a", "image": "nb:1", "default": True}]}})
    two = Config({"CivisSpawner": {"environments": [{"name": "a", "image": "nb:2", "default": True}]}})
    checksum = lambda c: daemonset_manifest(catalog_from_config(c))["spec"]["template"]["metadata"][  # noqa: E731
        "annotations"]["jupyterhub-civis/images-checksum"]
    assert checksum(one) != checksum(two)
    assert checksum(one) == checksum(one)


def test_prepuller_reports_a_broken_catalog(tmp_path):
    config = tmp_path / "jupyterhub_config.py"
    config.write_text("c.CivisSpawner.environments = [{'name': 'python', 'default': True}]\n")
    result = subprocess.run([sys.executable, "-m", "jupyterhub_civis.cli", "prepuller", str(config)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "needs an" in result.stderr and "image" in result.stderr


def _docs_yaml_blocks(heading: str) -> list[dict]:
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    import re

    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", section, re.S)]


def test_the_profile_list_migration_example_is_valid_and_keeps_the_choices(chart, tmp_path):
    defaults, schema = chart
    before, after = _docs_yaml_blocks("## Existing `singleuser.profileList` configurations")
    catalogs = []
    for name, values in (("before", before), ("after", after)):
        jsonschema.Draft7Validator(schema).validate(helm_merge(defaults, values))
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(values))
        catalogs.append(load_catalog(str(path)))
    old, new = catalogs
    assert [(e.name, e.image, e.default) for e in old.environments] == [
        (e.name, e.image, e.default) for e in new.environments]
    assert [e.source for e in old.environments] == ["profile_list"] * 3
    assert z2jh_values(old) == z2jh_values(new)  # the same images get pre-pulled
