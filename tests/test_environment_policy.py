"""Pure policy: the catalog, user_options validation, requirements and the form."""

from __future__ import annotations

import re

import pytest

from jupyterhub_civis.errors import InvalidInput
from jupyterhub_civis.spawner.catalog import CatalogError, parse_catalog
from jupyterhub_civis.spawner.form import render_options_form
from jupyterhub_civis.spawner.names import is_safe_name, safe_name
from jupyterhub_civis.spawner.options import (
    Selection,
    options_from_form,
    parse_user_options,
)
from jupyterhub_civis.spawner.requirements import environment_id, normalise_requirements

CATALOG = parse_catalog(
    [
        {"name": "python", "display_name": "Python", "default": True},
        {
            "name": "ml",
            "display_name": "ML",
            "packages": ["Scikit_Learn>=1.4"],
            "image": "img/ml:1",
        },
    ]
)


# ----- catalog -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([], "non-empty list"),
        ({"name": "python"}, "non-empty list"),
        (["python"], "must be a dict"),
        ([{"name": "Python"}], "is not a slug"),
        ([{"name": "a/b"}], "is not a slug"),
        ([{"name": "-a"}], "is not a slug"),
        ([{"name": "a", "default": True}, {"name": "a"}], "used twice"),
        ([{"name": "a"}, {"name": "b"}], 'no environment has "default": True'),
        ([{"name": "a", "default": True}, {"name": "b", "default": True}], "keep exactly one"),
        ([{"name": "a", "imgae": "x"}], "unknown field(s) ['imgae']"),
        ([{"name": "a", "packages": "numpy"}], "list of requirement strings"),
        ([{"name": "a", "packages": ["numpy >>> 1"]}], "packages: Expected"),
        ([{"name": "a", "resources": {"gpu": 1}}], "unknown resource(s) ['gpu']"),
        ([{"name": "a", "default": "yes"}], "default: must be true or false"),
        ([{"name": "a", "image": 5}], "image: must be a string"),
        ([{"name": "a", "resources": []}], "resources: must be a dict"),
    ],
)
def test_catalog_errors_are_actionable(entries, message):
    with pytest.raises(CatalogError) as e:
        parse_catalog(entries)
    assert message in str(e.value)


def test_container_backends_require_an_image_for_every_environment():
    with pytest.raises(CatalogError, match=r"environments\['python'\].*needs an \"image\""):
        parse_catalog([{"name": "python", "default": True}], require_image=True)
    assert parse_catalog([{"name": "python", "image": "img:1"}], require_image=True).default.image


def test_a_single_environment_is_the_default_and_packages_are_normalised():
    catalog = parse_catalog([{"name": "solo", "packages": ["Tabulate>=0.9", "tabulate >= 0.9"]}])
    assert catalog.default.name == "solo"
    assert catalog.default.packages == ("tabulate>=0.9",)


# ----- user_options ------------------------------------------------------------------


def test_empty_options_mean_the_default_environment():
    assert parse_user_options({}, CATALOG) == Selection("python")
    assert parse_user_options(None, CATALOG) == Selection("python")


def test_valid_options_are_normalised():
    selection = parse_user_options(
        {"environment": "ml", "packages": ["Humanize", "humanize", "tabulate==0.9.0"]}, CATALOG
    )
    assert selection == Selection("ml", None, ("humanize", "tabulate==0.9.0"))
    assert selection.to_user_options() == {
        "environment": "ml",
        "packages": ["humanize", "tabulate==0.9.0"],
    }


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (["python"], "user_options"),
        ({"cmd": "sh"}, "cmd"),
        ({"environment": "nope"}, "environment"),
        ({"environment": 1}, "environment"),
        ({"environment": "ml", "image": "img/ml:2"}, "image"),
        ({"packages": "x"}, "packages"),
        ({"packages": [None]}, "packages[0]"),
        ({"packages": ["ok", "pkg @ https://example.invalid/p.whl"]}, "packages[1]"),
        ({"packages": ["-r requirements.txt"]}, "packages[0]"),
        ({"packages": ["   "]}, "packages[0]"),
    ],
)
def test_invalid_options_name_the_field(raw, field):
    with pytest.raises(InvalidInput) as e:
        parse_user_options(raw, CATALOG)
    assert e.value.field == field
    assert str(e.value).startswith(f"{field}: ")


def test_custom_images_need_a_matching_allow_list():
    allowed = re.compile(r"registry\.example\.com/team/[a-z-]+:[0-9.]+")
    options = {"image": "registry.example.com/team/geo:1.2"}
    assert parse_user_options(options, CATALOG, allowed_images=allowed).image == options["image"]
    for image in [
        "registry.example.com/team/geo:1.2-evil",  # the pattern is anchored at both ends
        "evil.example.com/registry.example.com/team/geo:1.2",
        "registry.example.com/team/geo:latest",
        "registry.example.com/team/geo:1.2; rm -rf /",
    ]:
        with pytest.raises(InvalidInput) as e:
            parse_user_options({"image": image}, CATALOG, allowed_images=allowed)
        assert e.value.field == "image"


def test_direct_references_only_when_the_operator_allows_them():
    ref = ["pkg @ https://files.example.com/pkg-1.0-py3-none-any.whl"]
    with pytest.raises(InvalidInput):
        parse_user_options({"packages": ref}, CATALOG)
    selection = parse_user_options({"packages": ref}, CATALOG, allow_direct_references=True)
    assert selection.packages == ("pkg @ https://files.example.com/pkg-1.0-py3-none-any.whl",)


@pytest.mark.parametrize("name", ["analysis", "Q3-report", "a.b_c", "x" * 63])
def test_ordinary_names_are_their_own_folder_names(name):
    assert safe_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["$p~c|a! ch@rs", "hash#?question", "..", "a/b", "../x", "a..b", " a", "a" * 64, "_x",
     "x---y", "Ünïcødé", "😀", "a\x00b"],
)
def test_any_other_name_gets_a_slug_and_a_hash(name):
    derived = safe_name(name)
    assert re.fullmatch(r"[a-z0-9-]{1,40}---[0-9a-f]{8}", derived), derived
    assert is_safe_name(derived) is False  # "---" marks derived names: no name maps onto one
    assert safe_name(name) == derived  # stable
    assert "/" not in derived and ".." not in derived


def test_derived_names_are_readable_and_distinct():
    assert safe_name("$p~c|a! ch@rs").startswith("p-c-a-ch-rs---")
    assert safe_name("hash#?question").startswith("hash-question---")
    names = ["$p~c|a! ch@rs", "$P~C|A! CH@RS", "p-c-a-ch-rs", "hash#?question", "hash??question"]
    assert len({safe_name(n) for n in names}) == len(names)
    assert safe_name(safe_name("$p~c|a! ch@rs")) != safe_name("$p~c|a! ch@rs")


def test_form_fields_become_user_options():
    form = {
        "environment": ["ml"],
        "image": [""],
        "packages": ["humanize\n\n# a comment\n  tabulate==0.9.0  \n"],
        "_xsrf": ["token"],
    }
    assert options_from_form(form) == {
        "environment": "ml",
        "packages": ["humanize", "tabulate==0.9.0"],
    }


# ----- content ids -------------------------------------------------------------------


def test_environment_ids_depend_on_base_and_sorted_normalised_requirements():
    a = environment_id("base-1", normalise_requirements(["Tabulate", "humanize"]))
    b = environment_id("base-1", normalise_requirements(["humanize", "tabulate"]))
    assert a == b
    assert environment_id("base-2", ["humanize", "tabulate"]) != a
    assert environment_id("base-1", ["humanize"]) != a


# ----- the form ----------------------------------------------------------------------


def test_form_preselects_the_current_environment_and_escapes_text():
    catalog = parse_catalog(
        [
            {"name": "python", "default": True},
            {"name": "evil", "display_name": "<script>alert(1)</script>"},
        ]
    )
    html = render_options_form(
        catalog, {"environment": "evil", "packages": ["a"]}, allow_custom_image=False
    )
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)" in html
    assert re.search(r'value="evil"\s+required\s+checked', html)
    assert 'name="image"' not in html
    assert ">a</textarea>" in html


def test_form_offers_the_image_field_only_when_allowed():
    html = render_options_form(CATALOG, {}, allow_custom_image=True, image_pattern="reg/.*")
    assert 'name="image"' in html and "reg/.*" in html
    assert re.search(r'value="python"\s+required\s+checked', html)


def test_form_with_a_removed_environment_asks_to_choose_again():
    html = render_options_form(
        CATALOG, {"environment": "gone"}, allow_custom_image=False, notice="choose again"
    )
    assert "choose again" in html
    assert not re.search(r"\schecked[\s>]", html)


def test_a_pinned_digest_is_checked_as_a_reference_and_only_where_images_run():
    from jupyterhub_civis.spawner import pinning

    ref = "registry.example.com:5000/team/nb:1.0@sha256:" + "e" * 64
    assert pinning.repository_of(ref) == "registry.example.com:5000/team/nb"
    assert pinning.repository_of("nb") == "nb"
    chosen = parse_user_options({"environment": "ml", "image_digest": ref}, CATALOG)
    assert chosen.image_digest == ref
    assert chosen.to_user_options() == {"environment": "ml", "image_digest": ref}
    for bad in ("img/ml:1", "img/ml@sha256:" + "E" * 64, "img/ml@sha256:" + "e" * 64 + " x", 5):
        with pytest.raises(InvalidInput) as e:
            parse_user_options({"environment": "ml", "image_digest": bad}, CATALOG)
        assert e.value.field == "image_digest"
    with pytest.raises(InvalidInput, match="do not run container images"):
        parse_user_options({"image_digest": ref}, CATALOG, runs_images=False)


def test_a_digest_pins_only_images_the_operator_offers():
    from jupyterhub_civis.spawner.pinning import Pinned, pin_image

    digest = "@sha256:" + "f" * 64
    assert pin_image("img/ml" + digest, "img/ml:1", environment="ml") == Pinned("img/ml" + digest)
    built = "reg:5000/civis/environment" + digest
    assert pin_image(built, "img/ml:1", environment="ml", builder_repository="reg:5000/civis/environment/") == Pinned(built, built=True)
    allowed = re.compile(r"team/[a-z]+@sha256:[a-f0-9]{64}")
    assert pin_image("team/nb" + digest, "img/ml:1", environment="ml", allowed_images=allowed).image == "team/nb" + digest
    for foreign in ("img/ml2" + digest, "other/img/ml" + digest, "reg:5000/civis/environment" + digest):
        with pytest.raises(InvalidInput, match=r"not an image this hub offers for the environment 'ml' \(its image is 'img/ml'\)"):
            pin_image(foreign, "img/ml:1", environment="ml", allowed_images=allowed)
