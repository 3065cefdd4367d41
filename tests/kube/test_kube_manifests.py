"""CivisKubeSpawner's pods and claims, built exactly as in a spawn (minus the API call),
with config shaped as the z2jh chart's hub config sets it.

Every manifest is validated strictly against the Kubernetes 1.32 OpenAPI schema.
"""

import copy
import logging
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kube_support import CATALOG, chart_config, make_spawner, pod_for, to_dict, validate

from jupyterhub_civis.spawner import CatalogError, SpawnRejected
from jupyterhub_civis.spawner.kube import CivisKubeSpawner
from jupyterhub_civis.spawner.kube_policy import PodSettingsError

# runs KubeSpawner's own code, whose version differs between the JupyterHub lines
pytestmark = pytest.mark.hub

GPU_SETTINGS = {
    "pytorch-gpu": {
        "extra_resource_limits": {"nvidia.com/gpu": "1"},
        "node_selector": {"accelerator": "nvidia-l4"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "extra_labels": {"civis/gpu": "true"},
    }
}


def notebook(pod):
    return next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")


def env_of(pod):
    return {e["name"]: e.get("value") for e in notebook(pod)["env"]}


@pytest.mark.parametrize("environment", [e["name"] for e in CATALOG])
async def test_every_catalog_pod_and_claim_validates(environment):
    spawner = make_spawner(user_options={"environment": environment})
    pod = await pod_for(spawner)
    validate(pod)
    validate(to_dict(spawner.get_pvc_manifest()))
    image = next(e["image"] for e in CATALOG if e["name"] == environment)
    assert notebook(pod)["image"] == image
    assert pod["metadata"]["annotations"]["jupyterhub-civis/environment"] == environment
    assert env_of(pod)["CIVIS_IMAGE"] == image


async def test_chart_settings_survive_and_environment_settings_merge():
    config = chart_config(CivisKubeSpawner={"environment_pod_settings": GPU_SETTINGS})
    spawner = make_spawner(config, user_options={"environment": "pytorch-gpu"})
    pod = await pod_for(spawner)
    validate(pod)
    spec, labels = pod["spec"], pod["metadata"]["labels"]
    assert labels["hub.jupyter.org/network-access-hub"] == "true"  # chart's singleuser.extraLabels
    assert labels["civis/gpu"] == "true"
    assert spec["nodeSelector"] == {"pool": "users", "accelerator": "nvidia-l4"}
    keys = [t["key"] for t in spec["tolerations"]]
    assert keys == ["hub.jupyter.org/dedicated", "hub.jupyter.org_dedicated", "nvidia.com/gpu"]
    assert notebook(pod)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert notebook(pod)["resources"]["limits"]["memory"] == 1073741824  # chart's memory.limit
    assert [c["name"] for c in spec["initContainers"]] == ["block-cloud-metadata"]
    assert spec["schedulerName"] == "jhub-user-scheduler"
    assert spec["priorityClassName"] == "jhub-default-priority"
    assert spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert env_of(pod)["CHART_VAR"] == "from-chart"
    assert [v["name"] for v in spec["volumes"]] == ["volume-alice--work", "civis-podinfo"]

    # the same server restarted with another environment carries none of the GPU settings
    spawner.user_options = {"environment": "python"}
    pod = await pod_for(spawner)
    assert pod["spec"]["nodeSelector"] == {"pool": "users"}
    assert len(pod["spec"]["tolerations"]) == 2
    assert "nvidia.com/gpu" not in notebook(pod)["resources"]["limits"]
    assert "civis/gpu" not in pod["metadata"]["labels"]
    # and the configured traits themselves were never modified in place
    assert spawner.config.KubeSpawner.node_selector == {"pool": "users"}
    assert len(spawner.config.KubeSpawner.tolerations) == 2


async def test_catalog_resources_apply_and_do_not_leak():
    spawner = make_spawner(user_options={"environment": "scipy"})
    limits = notebook(await pod_for(spawner))["resources"]
    assert limits["limits"] == {"cpu": 2.0, "memory": 4294967296}
    spawner.user_options = {"environment": "python"}
    limits = notebook(await pod_for(spawner))["resources"]
    assert limits["limits"] == {"memory": 1073741824}  # back to the chart's values


@pytest.mark.parametrize(
    "environment, policy",
    [("python", "IfNotPresent"), ("pytorch-gpu", "IfNotPresent"), ("nightly", "Always")],
)
async def test_image_pull_policy(environment, policy):
    pod = await pod_for(make_spawner(user_options={"environment": environment}))
    assert notebook(pod)["imagePullPolicy"] == policy  # the chart configured Always


async def test_mutable_tags_warn_at_config_check(caplog):
    with caplog.at_level(logging.WARNING):
        catalog = CivisKubeSpawner.check_config(chart_config())
    assert catalog.names() == [e["name"] for e in CATALOG]
    assert any("'nightly'" in r.getMessage() and ":latest" in r.getMessage() for r in caplog.records)


def test_check_config_rejects_bad_pod_settings_and_unbuildable_packages():
    with pytest.raises(PodSettingsError, match="privileged"):
        CivisKubeSpawner.check_config(
            chart_config(CivisKubeSpawner={"environment_pod_settings": {"python": {"privileged": True}}}))
    catalog = copy.deepcopy(CATALOG)
    catalog[0]["packages"] = ["tabulate"]
    with pytest.raises(CatalogError, match="install-on-start"):
        CivisKubeSpawner.check_config(chart_config(CivisSpawner={"environments": catalog}))
    no_image = [{"name": "python", "display_name": "Python"}]
    with pytest.raises(CatalogError, match="image"):
        CivisKubeSpawner.check_config(chart_config(CivisSpawner={"environments": no_image}))


# ----- storage ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy, claims, modes",
    [
        ("chart", ["claim-alice--a", "claim-alice--b"], ["ReadWriteOnce"]),
        ("per-server", ["claim-alice--a", "claim-alice--b"], ["ReadWriteOnce"]),
        ("per-user", ["claim-alice", "claim-alice"], ["ReadWriteOnce", "ReadWriteMany"]),
    ],
)
async def test_storage_policy(policy, claims, modes):
    config = chart_config(CivisKubeSpawner={"storage_policy": policy})
    found = []
    for server in ("a", "b"):
        spawner = make_spawner(config, server=server, user_options={"environment": "python"})
        pod = await pod_for(spawner)
        pvc = to_dict(spawner.get_pvc_manifest())
        validate(pod)
        validate(pvc)
        assert pvc["spec"]["accessModes"] == modes
        assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
        found.append(pvc["metadata"]["name"])
    assert found == claims


async def test_storage_policy_adds_home_when_the_chart_has_none():
    config = chart_config(CivisKubeSpawner={"storage_policy": "per-user"})
    config.KubeSpawner.storage_pvc_ensure = False
    config.KubeSpawner.volumes = [{"name": "shared", "nfs": {"server": "nfs.example", "path": "/data"}}]
    config.KubeSpawner.volume_mounts = [{"name": "shared", "mountPath": "/data"}]
    config.KubeSpawner.storage_access_modes = ["ReadWriteMany"]
    spawner = make_spawner(config, user_options={"environment": "python"})
    pod = await pod_for(spawner)
    validate(pod)
    assert spawner.storage_pvc_ensure is True
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["shared", "home", "civis-podinfo"]
    assert pod["spec"]["volumes"][1]["persistentVolumeClaim"]["claimName"] == "claim-alice"
    assert {m["mountPath"] for m in notebook(pod)["volumeMounts"]} == {"/data", "/home/jovyan", "/etc/civis/podinfo"}


# ----- extra packages ------------------------------------------------------------------------


async def test_extra_packages_are_rejected_with_a_clear_message_by_default():
    spawner = make_spawner(user_options={"environment": "python", "packages": ["tabulate==0.9.0"]})
    with pytest.raises(SpawnRejected, match=r"packages: .*tabulate==0.9.0.*choose an environment"):
        await pod_for(spawner)


@pytest.mark.parametrize("on_home", [True, False])
async def test_extra_packages_install_on_start(on_home):
    config = chart_config(CivisKubeSpawner={"extra_packages": "install-on-start"})
    if not on_home:
        config.CivisKubeSpawner.packages_dir = "/opt/civis-packages"
    spawner = make_spawner(config, user_options={"environment": "python", "packages": ["tabulate==0.9.0"]})
    pod = await pod_for(spawner)
    validate(pod)
    init = pod["spec"]["initContainers"][-1]
    assert init["name"] == "civis-packages"
    assert init["image"] == notebook(pod)["image"]
    assert "tabulate==0.9.0" in init["command"][2]
    target = env_of(pod)["CIVIS_PACKAGES_DIR"]
    assert env_of(pod)["PYTHONPATH"] == target
    assert target.endswith(spawner.environment_record["id"])
    volumes = [v["name"] for v in pod["spec"]["volumes"]]
    assert ("civis-packages" in volumes) is (not on_home)
    assert spawner.environment_record["extra_packages"] == ["tabulate==0.9.0"]


async def test_a_profile_applies_only_to_its_own_environment():
    config = chart_config()
    config.KubeSpawner.profile_list = [
        {"display_name": "Privileged", "slug": "privileged",
         "kubespawner_override": {"image": "team/admin:1", "privileged": True}}]
    pod = await pod_for(make_spawner(config, user_options={"environment": "python"}))
    assert notebook(pod)["image"] == CATALOG[0]["image"]
    assert "privileged" not in notebook(pod)["securityContext"]
    config.KubeSpawner.profile_list[0]["default"] = True  # a second default is a config error
    with pytest.raises(CatalogError, match="are all marked default"):
        await pod_for(make_spawner(config, user_options={"environment": "python"}))


# ----- hostile user_options ----------------------------------------------------------------

HOSTILE = [
    {"profile": "gpu"},
    {"kubespawner_override": {"privileged": True}},
    {"image": "evil/miner:1"},
    {"environment": "python", "node_selector": {"kubernetes.io/hostname": "control-plane"}},
    {"environment": {"name": "python"}},
    {"environment": ["python"]},
    {"environment": "../python"},
    {"environment": "python\nprivileged: true"},
    {"environment": "PYTHON"},
    {"environment": "python", "extra_pod_config": {"hostNetwork": True}},
    {"environment": "python", "cmd": ["sh", "-c", "cat /etc/shadow"]},
    {"packages": ["--index-url=http://evil.example/ x"]},
    {"packages": "numpy"},
    {"environment": "python", "__class__": "x"},
    {"uid": 0},
    {"environment": "python", "image_pull_policy": "Never"},
    {"environment": "python", "volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
    {"environment": "python", "tolerations": [{"operator": "Exists"}]},
    {"environment": "x" * 10000},
    {"environment_pod_settings": {"python": {"scheduler_name": "evil"}}},
    {"environment": "python", "service_account": "hub"},
    {"environment": "python", "image": "quay.io/jupyter/base-notebook:2025-01-06"},
    {"environment": "python", "packages": ["evil @ https://evil.example/evil.whl"]},
    {"environment": "python", "env": {"LD_PRELOAD": "/tmp/x.so"}},
    {"environment": "python", "storage_policy": "per-user"},
    {"environment": "python", "packages": [{"name": "numpy"}]},
    {"environment": "python", "packages": ["numpy"] * 31},
    {"environment": 1},
    {"environment": True},
    {"environment": "nightly", "image_pull_policy": "IfNotPresent"},
]
ACCEPTED = [
    ({}, "python"),
    ({"environment": ""}, "python"),
    ({"environment": "python", "image": ""}, "python"),
    ({"environment": "python", "packages": []}, "python"),
    ({"environment": "pytorch-gpu"}, "pytorch-gpu"),
]

_baselines = {}


async def baseline(environment):
    if environment not in _baselines:
        config = chart_config(CivisKubeSpawner={"environment_pod_settings": GPU_SETTINGS})
        _baselines[environment] = await pod_for(make_spawner(config, user_options={"environment": environment}))
    return _baselines[environment]


async def outcome(options):
    """None when the spawn is refused, else the pod it would make."""
    config = chart_config(CivisKubeSpawner={"environment_pod_settings": GPU_SETTINGS})
    spawner = make_spawner(config, user_options={})
    spawner.user_options = options
    try:
        return await pod_for(spawner), spawner.environment_record["name"]
    except SpawnRejected as e:
        assert e.status_code == 400 and e.jupyterhub_message
        return None, None


@pytest.mark.parametrize("options", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_user_options_are_refused(options):
    pod, _ = await outcome(options)
    assert pod is None


@pytest.mark.parametrize("options, environment", ACCEPTED)
async def test_accepted_user_options_make_exactly_the_catalog_pod(options, environment):
    pod, chosen = await outcome(options)
    assert chosen == environment
    assert pod == await baseline(environment)


async def test_allowed_custom_image_changes_only_the_image():
    config = chart_config(CivisSpawner={"allowed_images": r"registry\.example\.com/team/[a-z0-9-]+:[0-9.]+"})
    for evil in ["registry.example.com/team/nb:1.0 --privileged", "registry.example.com/team/nb:1.0@sha256:" + "a" * 64,
                 "evil.example/team/nb:1.0", "registry.example.com/team/nb:latest"]:
        spawner = make_spawner(config, user_options={"environment": "python", "image": evil})
        with pytest.raises(SpawnRejected):
            await pod_for(spawner)
    spawner = make_spawner(config, user_options={"environment": "python", "image": "registry.example.com/team/nb:1.0"})
    pod = await pod_for(spawner)
    validate(pod)
    base = await pod_for(make_spawner(config, user_options={"environment": "python"}))
    image_fields = {"CIVIS_IMAGE", "JUPYTER_IMAGE", "JUPYTER_IMAGE_SPEC", "CIVIS_ENVIRONMENT_ID",
                    "CIVIS_ENVIRONMENT_JSON"}

    def strip(p):
        p = copy.deepcopy(p)
        c = notebook(p)
        c["image"] = None
        c["env"] = [e for e in c["env"] if e["name"] not in image_fields]
        return p

    assert notebook(pod)["image"] == "registry.example.com/team/nb:1.0"
    assert strip(pod) == strip(base)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
option_keys = st.sampled_from(
    ["environment", "image", "packages", "profile", "node_selector", "extra_pod_config", "cmd",
     "tolerations", "volumes", "uid", "privileged", "kubespawner_override", "image_pull_policy"]
) | st.text(max_size=12)
environment_values = st.sampled_from([e["name"] for e in CATALOG] + ["", "PYTHON", "../x"]) | json_values


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    options=st.dictionaries(option_keys, json_values, max_size=4),
    environment=environment_values,
)
async def test_property_no_user_option_changes_pod_fields(options, environment):
    """Any user_options: refused with HTTP 400, or exactly the catalog pod of the chosen environment."""
    options = {**options, "environment": environment}
    pod, chosen = await outcome(options)
    if pod is not None:
        assert pod == await baseline(chosen)


# ----- a copy pinned to the image digest its notebook recorded ------------------------------

DIGEST = "sha256:" + "b" * 64


async def test_a_recorded_digest_of_the_environments_image_pins_the_pod():
    pinned = f"quay.io/jupyter/scipy-notebook@{DIGEST}"
    spawner = make_spawner(user_options={"environment": "scipy", "image_digest": pinned})
    pod = await pod_for(spawner)
    validate(pod)
    assert notebook(pod)["image"] == pinned
    assert notebook(pod)["imagePullPolicy"] == "IfNotPresent"  # a digest never changes
    assert spawner.environment_record["image_digest"] == pinned
    assert spawner.user_options == {"environment": "scipy", "image_digest": pinned}
    # everything else is the environment's own pod
    base = copy.deepcopy(await baseline("scipy"))
    for p in (pod, base):
        notebook(p)["image"] = None
        notebook(p)["env"] = [e for e in notebook(p)["env"] if "IMAGE" not in e["name"]
                              and e["name"] not in ("CIVIS_ENVIRONMENT_ID", "CIVIS_ENVIRONMENT_JSON")]
        notebook(p).pop("imagePullPolicy", None)
    assert pod == base


async def test_packages_install_on_start_over_the_pinned_base():
    config = chart_config(CivisKubeSpawner={"extra_packages": "install-on-start"})
    pinned = f"quay.io/jupyter/base-notebook@{DIGEST}"
    spawner = make_spawner(config, user_options={
        "environment": "python", "packages": ["tabulate==0.9.0"], "image_digest": pinned})
    pod = await pod_for(spawner)
    assert notebook(pod)["image"] == pinned
    assert pod["spec"]["initContainers"][-1]["image"] == pinned
    assert "tabulate==0.9.0" in pod["spec"]["initContainers"][-1]["command"][2]


@pytest.mark.parametrize("digest, says", [
    (f"evil.example/jupyter/base-notebook@{DIGEST}", "not an image this hub offers"),
    (f"quay.io/jupyter/scipy-notebook@{DIGEST}", "not an image this hub offers"),  # another environment's
    (f"quay.io/jupyter/base-notebook:2025-01-06 --privileged@{DIGEST}", "not an image pinned by digest"),
    ("quay.io/jupyter/base-notebook:2025-01-06", "not an image pinned by digest"),
    ("quay.io/jupyter/base-notebook@sha256:abc", "not an image pinned by digest"),
])
async def test_a_digest_of_an_image_the_operator_did_not_offer_is_refused(digest, says):
    spawner = make_spawner(user_options={"environment": "python", "image_digest": digest})
    with pytest.raises(SpawnRejected) as e:
        await pod_for(spawner)
    assert e.value.status_code == 400
    assert re.match(rf"image_digest: .*{says}", e.value.jupyterhub_message)


async def test_the_allow_list_admits_a_digest_of_a_custom_image():
    config = chart_config(CivisSpawner={"allowed_images": r"registry\.example\.com/team/[a-z0-9-]+@sha256:[a-f0-9]{64}"})
    pinned = f"registry.example.com/team/nb@{DIGEST}"
    pod = await pod_for(make_spawner(config, user_options={"environment": "python", "image_digest": pinned}))
    assert notebook(pod)["image"] == pinned
    with pytest.raises(SpawnRejected, match="not an image this hub offers"):
        await pod_for(make_spawner(config, user_options={
            "environment": "python", "image_digest": f"registry.example.com/other/nb@{DIGEST}"}))


async def test_a_digest_of_an_environment_image_the_builder_made_runs_as_is():
    config = chart_config(CivisKubeSpawner={"image_builder": True})
    config.DockerImageBuilder.registry = config.ImageBuilder.registry = "registry.example.com:5000"
    pinned = f"registry.example.com:5000/civis/environment@{DIGEST}"
    spawner = make_spawner(config, user_options={
        "environment": "python", "packages": ["tabulate==0.9.0"], "image_digest": pinned})
    pod = await pod_for(spawner)  # no build (its packages are in it), no init container
    assert notebook(pod)["image"] == pinned
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["block-cloud-metadata"]
    assert spawner.environment_record["packages"] == ["tabulate==0.9.0"]
