"""KubeSpawner's ``profile_list`` on ``CivisKubeSpawner``: every behaviour KubeSpawner 7.1's own
profile tests check (its tests/test_profile.py and tests/test_spawner.py), written for this
project against the bundle's spawner — both request forms, list and dict profile lists.

The dict form of ``profile_list`` needs KubeSpawner 7.1 (7.0, which z2jh chart 4.4.0 ships,
accepts only lists and callables), so the dict variants exist only where it is installed.
"""

from __future__ import annotations

import copy

import pytest
from kube_support import chart_config, make_spawner, pod_for, validate
from kubespawner import KubeSpawner

from jupyterhub_civis.errors import InvalidInput
from jupyterhub_civis.spawner.base import SpawnRejected
from jupyterhub_civis.spawner.catalog import CatalogError, parse_catalog
from jupyterhub_civis.spawner.options import options_from_form, parse_user_options
from jupyterhub_civis.spawner.profiles import environments_from_profiles

# runs KubeSpawner's own code, whose version differs between the JupyterHub lines
pytestmark = pytest.mark.hub

DICT_FORM = "Dict" in repr(KubeSpawner.class_traits()["profile_list"].trait_types)
FORMS = ["list", "dict"] if DICT_FORM else ["list"]

PANGEO = {
    "display_name": "Image",
    "unlisted_choice": {
        "enabled": True,
        "display_name": "Image Location",
        "validation_regex": "^pangeo/.*$",
        "validation_message": "Must be a pangeo image, matching ^pangeo/.*$",
        "kubespawner_override": {"image": "{value}"},
    },
    "choices": {
        "pytorch": {"display_name": "PyTorch", "kubespawner_override": {"image": "pangeo/pytorch-notebook:2024.1"}},
        "r": {"display_name": "R", "default": True, "kubespawner_override": {"image": "team/r:4.3"}},
    },
}
PROFILES = {
    "small": {
        "display_name": "Small", "slug": "small", "default": True,
        "kubespawner_override": {"image": "team/python:3.12", "cpu_limit": 1, "mem_limit": 512 * 1024**2,
                                 "environment": {"SIZE": "small"}},
    },
    "large": {
        "display_name": "Large", "slug": "large",
        "kubespawner_override": {"image": "team/datascience:2", "cpu_limit": 4, "mem_limit": 8 * 1024**3},
    },
    "trimmed": {
        "display_name": "Trimmed", "slug": "trimmed",
        "kubespawner_override": {"image": "team/r:4.3", "environment": {"ADDED": "yes", "CHART_VAR": None}},
    },
    "pangeo": {"display_name": "Pangeo", "slug": "pangeo", "profile_options": {"image": PANGEO}},
    "free": {
        "display_name": "Free", "slug": "free",
        "profile_options": {"image": {**copy.deepcopy(PANGEO), "unlisted_choice": {
            "enabled": True, "display_name": "Image", "kubespawner_override": {"image": "{value}"}}}},
    },
}


def profiles(form: str):
    if form == "dict":
        return copy.deepcopy(PROFILES)
    return [copy.deepcopy(p) for p in PROFILES.values()]


def spawner_with(profile_list, user_options=None, **civis):
    config = chart_config()
    del config.CivisSpawner["environments"]  # profile_list is the catalog
    config.KubeSpawner.profile_list = profile_list
    for key, value in civis.items():
        setattr(config.CivisKubeSpawner, key, value)
    return make_spawner(config, user_options=user_options)


# ----- reading profile_list (test_profile.py: missing defaults, finding slugs) -------------


def test_missing_slugs_and_defaults_are_filled_in_as_kubespawner_does():
    environments = environments_from_profiles(
        [
            {"display_name": "Something without a slug"},
            {"display_name": "Something with choices", "profile_options": {
                "no-defaults": {"display_name": "No default", "choices": {
                    "option-1": {"display_name": "Option 1"}, "option-2": {"display_name": "Option 2"}}},
                "only-unlisted": {"display_name": "Free text", "unlisted_choice": {"enabled": True}},
                "explicit": {"choices": {"a": {}, "b": {"default": True}}},
            }},
            {"display_name": "Sluggy", "slug": "sluggity-slug"},
        ],
        default_image="chart/image:1",
    )
    assert [e.name for e in environments] == ["something-without-a-slug", "something-with-choices",
                                              "sluggity-slug"]
    assert [e.default for e in environments] == [True, False, False]  # first, when none is
    assert all(e.image == "chart/image:1" and e.source == "profile_list" for e in environments)
    options = {o.name: o for o in environments[1].options}
    assert options["no-defaults"].default == "option-1" and options["no-defaults"].unlisted is None
    assert options["only-unlisted"].default is None
    assert options["only-unlisted"].unlisted.display_name_in_choices == "Other..."
    assert options["explicit"].default == "b"
    assert environments_from_profiles([], default_image="x") == []


@pytest.mark.parametrize("form", FORMS)
async def test_profiles_are_the_catalog_and_found_by_slug(form):
    spawner = spawner_with(profiles(form))
    catalog = await spawner.get_catalog()
    assert catalog.names() == ["small", "large", "trimmed", "pangeo", "free"] if form == "list" else sorted(
        ["small", "large", "trimmed", "pangeo", "free"])
    assert catalog.default.name == "small"
    assert catalog.get("large").image == "team/datascience:2"
    for raw, expected in [({"profile": "large"}, "large"), ({"profile": ""}, "small"), ({}, "small"),
                          ({"environment": "large"}, "large")]:
        assert parse_user_options(raw, catalog).environment == expected


async def test_an_unknown_slug_is_refused_naming_the_offered_ones():
    spawner = spawner_with(profiles("list"), {"profile": "does-not-exist"})
    with pytest.raises(SpawnRejected) as e:
        await spawner.apply_user_options(spawner, spawner.user_options)
    assert e.value.status_code == 400
    assert e.value.jupyterhub_message.startswith("profile: 'does-not-exist' is not offered here")
    assert "'large'" in e.value.jupyterhub_message


async def test_a_dict_profile_list_is_ordered_by_key():
    if not DICT_FORM:
        assert environments_from_profiles({"b": {"display_name": "B"}, "a": {"display_name": "A"}},
                                          default_image="x")[0].name == "a"
        return
    spawner = spawner_with({"zeta": {"display_name": "Zeta"}, "alpha": {"display_name": "Alpha"}})
    assert (await spawner.get_catalog()).names() == ["alpha", "zeta"]


# ----- applying a profile (test_spawner.py: user_options from the API and the form) --------


@pytest.mark.parametrize("form", FORMS)
async def test_a_profile_chosen_through_the_api_applies_its_overrides(form):
    spawner = spawner_with(profiles(form), {"profile": "large"})
    assert spawner.cpu_limit is None
    pod = await pod_for(spawner)
    assert (spawner.image, spawner.cpu_limit, spawner.mem_limit) == ("team/datascience:2", 4, 8 * 1024**3)
    container = pod["spec"]["containers"][0]
    assert container["image"] == "team/datascience:2"
    assert float(container["resources"]["limits"]["cpu"]) == 4
    assert spawner.user_options == {"profile": "large"}  # stored in KubeSpawner's own form
    assert spawner.environment_record["name"] == "large"
    validate(pod)


@pytest.mark.parametrize("form", FORMS)
async def test_no_choice_means_the_default_profile(form):
    spawner = spawner_with(profiles(form), {})
    await spawner.load_user_options()  # as code written for KubeSpawner calls it
    assert (spawner.image, spawner.cpu_limit) == ("team/python:3.12", 1)
    assert spawner.environment["SIZE"] == "small" and spawner.environment["CHART_VAR"] == "from-chart"


@pytest.mark.parametrize("form", FORMS)
async def test_the_form_posts_the_profile_and_the_overrides_apply(form):
    spawner = spawner_with(profiles(form))
    html = await spawner._render_options_form()
    assert 'value="large"' in html and 'name="profile-option-pangeo--image"' in html
    spawner.user_options = spawner.options_from_form({"profile": ["large"]})
    assert spawner.user_options == {"profile": "large"}
    assert spawner.cpu_limit is None  # nothing applied before the start
    await pod_for(spawner)
    assert (spawner.image, spawner.cpu_limit) == ("team/datascience:2", 4)


@pytest.mark.parametrize("form", FORMS)
async def test_an_option_choice_from_the_form_picks_its_override(form):
    spawner = spawner_with(profiles(form))
    spawner.user_options = spawner.options_from_form(
        {"profile": ["pangeo"], "profile-option-pangeo--image": ["pytorch"]})
    assert spawner.user_options == {"profile": "pangeo", "image": "pytorch"}
    pod = await pod_for(spawner)
    assert pod["spec"]["containers"][0]["image"] == "pangeo/pytorch-notebook:2024.1"


@pytest.mark.parametrize("form", FORMS)
async def test_without_a_choice_an_option_uses_its_default_choice(form):
    spawner = spawner_with(profiles(form), {"profile": "pangeo"})
    pod = await pod_for(spawner)
    assert pod["spec"]["containers"][0]["image"] == "team/r:4.3"


@pytest.mark.parametrize("form", FORMS)
async def test_a_typed_value_fills_the_override_and_a_second_one_replaces_it(form):
    spawner = spawner_with(profiles(form))
    for image in ("pangeo/test:latest", "pangeo/test:1.2.3"):
        spawner.user_options = spawner.options_from_form(
            {"profile": ["pangeo"], "profile-option-pangeo--image--unlisted-choice": [image]})
        assert spawner.user_options == {"profile": "pangeo", "image--unlisted-choice": image}
        pod = await pod_for(spawner)
        assert spawner.image == image and pod["spec"]["containers"][0]["image"] == image


@pytest.mark.parametrize("form", FORMS)
async def test_a_typed_value_must_match_the_validation_regex(form):
    spawner = spawner_with(profiles(form), {"profile": "pangeo", "image--unlisted-choice": "invalid/foo:latest"})
    with pytest.raises(SpawnRejected) as e:
        await spawner.apply_user_options(spawner, spawner.user_options)
    assert e.value.jupyterhub_message == (
        "image--unlisted-choice: 'invalid/foo:latest': Must be a pangeo image, matching ^pangeo/.*$")
    assert spawner.image == "quay.io/jupyterhub/k8s-singleuser-sample:4.2.0"  # nothing applied


@pytest.mark.parametrize("form", FORMS)
async def test_without_a_regex_any_typed_value_is_taken(form):
    spawner = spawner_with(profiles(form), {"profile": "free", "image--unlisted-choice": "invalid/foo:latest"})
    pod = await pod_for(spawner)
    assert pod["spec"]["containers"][0]["image"] == "invalid/foo:latest"


@pytest.mark.parametrize("form", FORMS)
async def test_dict_overrides_merge_and_none_removes_a_key(form):
    spawner = spawner_with(profiles(form), {"profile": "trimmed"})
    spawner.environment = {"existing": "existing-value", "CHART_VAR": "does-it-matter"}
    spawner._configured["environment"] = copy.deepcopy(spawner.environment)
    await spawner.load_user_options()
    assert spawner.environment == {"existing": "existing-value", "ADDED": "yes"}


async def test_a_typed_value_fills_nested_overrides_and_keeps_escaped_braces():
    profile_list = [{
        "display_name": "CPU only", "slug": "cpu",
        "profile_options": {"image": {"display_name": "Image", "unlisted_choice": {
            "enabled": True, "validation_regex": "^pangeo/.*$",
            "kubespawner_override": {
                "image": "{value}",
                "environment": {"CUSTOM_IMAGE_USED": "yes", "CUSTOM_IMAGE": "{value}",
                                "USER": "${JUPYTER_USER}", "USER_TEST": "${{JUPYTER_USER}}"},
                "init_containers": [{"name": "testing", "image": "{value}",
                                     "securityContext": {"runAsUser": 1000}}],
            }}}},
    }]
    image = "pangeo/pangeo-notebook:2024.1"
    spawner = spawner_with(profile_list, {"profile": "cpu", "image--unlisted-choice": image})
    spawner.environment = {}
    spawner._configured["environment"] = {}
    spawner.init_containers = []
    await spawner.load_user_options()
    assert spawner.image == image
    assert spawner.environment == {"CUSTOM_IMAGE_USED": "yes", "CUSTOM_IMAGE": image,
                                   "USER": "${JUPYTER_USER}", "USER_TEST": "${JUPYTER_USER}"}
    assert spawner.init_containers == [{"name": "testing", "image": image,
                                        "securityContext": {"runAsUser": 1000}}]


async def test_an_empty_request_uses_the_first_profile_and_its_first_choice():
    profile_list = [{"display_name": "CPU only", "profile_options": {"image": {
        "display_name": "Image",
        "unlisted_choice": {"enabled": True, "kubespawner_override": {"image": "{value}"}},
        "choices": {"op-1": {"kubespawner_override": {"image": "pangeo/pangeo-notebook:ebeb9dd"}},
                    "op-2": {"kubespawner_override": {"image": "pangeo/pangeo-notebook:2024"}}}}}}]
    spawner = spawner_with(profile_list, {})
    assert spawner.cpu_limit is None
    await spawner.load_user_options()
    assert spawner.image == "pangeo/pangeo-notebook:ebeb9dd"


def test_profile_option_fields_of_a_longer_slug_do_not_leak_into_a_shorter_one():
    formdata = {
        "profile": ["short"],
        "profile-option-short--relevant": ["choice-a"],
        "profile-option-short-plus--irrelevant": ["choice-b"],
    }
    assert options_from_form(formdata) == {"profile": "short", "relevant": "choice-a"}
    native = {"environment": ["short"], "profile-option-short--relevant": ["choice-a"],
              "profile-option-short-plus--irrelevant": ["choice-b"]}
    assert options_from_form(native) == {"environment": "short", "options": {"relevant": "choice-a"}}


# ----- beyond KubeSpawner: what the bundle adds or refuses ---------------------------------


async def test_one_profile_does_not_leak_into_the_next_start():
    spawner = spawner_with(profiles("list"), {"profile": "large"})
    await pod_for(spawner)
    spawner.user_options = {"profile": "trimmed"}
    pod = await pod_for(spawner)
    assert (spawner.image, spawner.cpu_limit, spawner.mem_limit) == ("team/r:4.3", None, 1024**3)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["ADDED"] == "yes" and "SIZE" not in env and "CHART_VAR" not in env
    spawner.user_options = {"profile": "small"}
    await pod_for(spawner)
    assert spawner.environment["CHART_VAR"] == "from-chart" and "ADDED" not in spawner.environment


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"profile": "pangeo", "garbage": "x"}, "garbage"),
        ({"profile": "pangeo", "image": "nope"}, "image"),
        ({"profile": "large", "image--unlisted-choice": "x"}, "image--unlisted-choice"),
        ({"profile": 3}, "profile"),
        ({"profile": "pangeo", "image": ["pytorch"]}, "image"),
        ({"environment": "pangeo", "options": {"image": "nope"}}, "options.image"),
        ({"profile": "pangeo", "image--unlisted-choice": "pangeo/" + "x" * 300}, "image--unlisted-choice"),
    ],
)
async def test_bad_profile_requests_get_400_naming_the_field(raw, field):
    spawner = spawner_with(profiles("list"), raw)
    with pytest.raises(SpawnRejected) as e:
        await spawner.apply_user_options(spawner, spawner.user_options)
    assert e.value.jupyterhub_message.startswith(f"{field}: "), e.value.jupyterhub_message


async def test_profiles_and_the_native_catalog_together():
    config = chart_config()
    config.KubeSpawner.profile_list = [{"display_name": "GPU", "slug": "gpu",
                                        "kubespawner_override": {"image": "team/gpu:1"}}]
    spawner = make_spawner(config, user_options={"environment": "gpu"})
    catalog = await spawner.get_catalog()
    assert catalog.names() == ["python", "scipy", "pytorch-gpu", "nightly", "gpu"]
    assert catalog.default.name == "python"
    pod = await pod_for(spawner)
    assert pod["spec"]["containers"][0]["image"] == "team/gpu:1"
    clash = chart_config()
    clash.KubeSpawner.profile_list = [{"display_name": "Python", "slug": "python"}]
    with pytest.raises(Exception, match="the name 'python' is used twice"):
        await make_spawner(clash).get_catalog()


async def test_a_callable_profile_list_is_evaluated_for_the_spawning_user():
    def per_user(spawner):
        return [{"display_name": f"Team of {spawner.user.name}", "slug": "team",
                 "kubespawner_override": {"image": f"team/{spawner.user.name}:1"}}]

    async def per_user_async(spawner):
        return per_user(spawner)

    for profile_list in (per_user, per_user_async):
        spawner = spawner_with(profile_list, {"profile": "team"})
        assert spawner.catalog.environments[0].name == "default"  # static view: not evaluated
        pod = await pod_for(spawner)
        assert pod["spec"]["containers"][0]["image"] == "team/alice:1"
        html = await spawner._render_options_form()
        assert "Team of alice" in html


@pytest.mark.parametrize("form", FORMS)
async def test_a_profile_may_move_the_pod_to_another_namespace(form):
    profile_list = profiles(form)
    (profile_list["large"] if form == "dict" else profile_list[1])["kubespawner_override"]["namespace"] = "other"
    spawner = spawner_with(profile_list, {"profile": "large"})
    pod = await pod_for(spawner)
    assert spawner.namespace == "other"  # KubeSpawner creates the pod (and claim) there
    validate(pod)
    spawner.user_options = {"profile": "small"}
    await pod_for(spawner)
    assert spawner.namespace == "civis"


def test_profile_parsing_errors_name_the_profile():
    with pytest.raises(CatalogError, match=r"profile_list\[0\]: .*validation_regex.*not a valid regular"):
        environments_from_profiles([{"display_name": "x", "profile_options": {"o": {"unlisted_choice": {
            "enabled": True, "validation_regex": "("}}}}], default_image="i")
    with pytest.raises(CatalogError, match=r"profile_list\[1\] must be a dict"):
        environments_from_profiles([{"display_name": "x"}, "y"], default_image="i")
    catalog = parse_catalog([], extra=environments_from_profiles([{"display_name": "x"}], default_image="i"))
    with pytest.raises(InvalidInput, match="^o: must be a string"):
        parse_user_options({"profile": "x", "o": 1}, catalog)
