"""The recipe, written once: it checks itself, profiles hold one, checkpoints compare it."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from d2l_resnet.data import load_data_fashion_mnist_fast
from d2l_resnet.profiles import PROFILES, DataSpec, Recipe, get_profile


def test_the_default_recipe_is_the_sources_with_the_books_rate() -> None:
    recipe = Recipe()
    assert (recipe.lr, recipe.init, recipe.momentum, recipe.schedule, recipe.precision) == \
        (0.05, "xavier", 0.0, "constant", "fp32")


def test_d2l_is_the_books_recipe_and_course_and_quick_share_one() -> None:
    d2l = get_profile("d2l")
    assert (d2l.recipe.lr, d2l.recipe.num_epochs, d2l.data.batch_size, d2l.data.resize) == \
        (0.05, 10, 256, 96)
    assert (d2l.recipe.init, d2l.recipe.momentum, d2l.recipe.schedule, d2l.recipe.precision,
            d2l.data.augment, d2l.data.normalize) == ("xavier", 0.0, "constant", "fp32",
                                                      False, False)
    quick, course = get_profile("quick"), get_profile("course")
    assert quick.recipe == course.recipe.replace(num_epochs=quick.recipe.num_epochs)
    assert quick.data.train_subset is not None and course.data.train_subset is None
    assert course.recipe.precision == quick.recipe.precision == "auto"


@pytest.mark.parametrize(("changes", "facts"), [
    ({"num_epochs": 0}, ["num_epochs", "0", "positive integer"]),
    ({"num_epochs": 2.5}, ["num_epochs", "2.5"]),
    ({"lr": 0}, ["lr", "0", "(0, inf)", "0.05"]),
    ({"momentum": -0.1}, ["momentum", "-0.1", "[0, 1)"]),
    ({"weight_decay": float("inf")}, ["weight_decay", "inf"]),
    ({"label_smoothing": 1.0}, ["label_smoothing", "1.0"]),
    ({"schedule": "step"}, ["schedule", "'step'", "'constant'", "'onecycle'"]),
    ({"warmup": 0}, ["warmup", "0", "(0, 1)", "quarter"]),
    ({"warmup": 1.0}, ["warmup", "1.0", "(0, 1)"]),
    ({"init": "he"}, ["init", "'he'", "'kaiming'"]),
    ({"precision": "fp16"}, ["precision", "'fp16'", "'auto'", "'fp32'", "'bf16'"]),
    ({"seed": -1}, ["seed", "-1", "None"]),
    ({"nesterov": 1}, ["nesterov", "1", "True", "False"]),
])
def test_a_recipe_checks_itself_once_when_made(changes: dict, facts: list[str]) -> None:
    for make in (lambda: Recipe(**changes), lambda: Recipe().replace(**changes)):
        with pytest.raises(ValueError) as err:
            make()
        assert all(fact in str(err.value) for fact in facts), str(err.value)


def test_differences_name_every_setting_that_differs_or_is_missing() -> None:
    stored = dataclasses.asdict(Recipe(lr=0.1))
    assert Recipe(lr=0.1).differences(stored) == {}
    assert Recipe(lr=0.2).differences(stored) == {"lr": (0.1, 0.2)}
    del stored["flip_tta"]
    diff = Recipe(lr=0.1).differences(stored)
    assert list(diff) == ["flip_tta"] and diff["flip_tta"][1] is False
    assert repr(diff["flip_tta"][0]) == "not stored"       # as a resume error shows it


def test_profile_replace_routes_each_setting_to_the_recipe_or_the_data() -> None:
    course = get_profile("course")
    changed = course.replace(num_epochs=3, batch_size=64, precision="fp32")
    assert changed.recipe.num_epochs == 3 and changed.recipe.precision == "fp32"
    assert changed.data.batch_size == 64 and changed.data.augment == course.data.augment
    with pytest.raises(ValueError, match="dropout"):
        course.replace(dropout=0.1)
    with pytest.raises(ValueError, match="batch_size"):
        course.replace(batch_size=0)


def test_data_spec_names_are_the_fast_loaders_keywords() -> None:
    keywords = set(inspect.signature(load_data_fashion_mnist_fast).parameters)
    assert {f.name for f in dataclasses.fields(DataSpec)} <= keywords
    for profile in PROFILES.values():
        assert isinstance(profile.recipe, Recipe) and isinstance(profile.data, DataSpec)


def test_get_profile_reads_the_environment_and_refuses_unknown_names(monkeypatch) -> None:
    monkeypatch.setenv("D2L_RESNET_PROFILE", "quick")
    assert get_profile().name == "quick"
    assert get_profile("D2L ").name == "d2l"
    with pytest.raises(ValueError, match=r"'fast'.*quick, course, d2l"):
        get_profile("fast")
    monkeypatch.setenv("D2L_RESNET_PROFILE", "fast")
    with pytest.raises(ValueError, match=r"'fast'.*\$D2L_RESNET_PROFILE"):
        get_profile()
