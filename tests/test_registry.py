import pytest

from trainctl.components import REGISTRIES
from trainctl.errors import UserError
from trainctl.registry import Registry


def test_register_get_names():
    reg = Registry("widget")

    @reg.register("b")
    def build_b():
        """Builds b."""

    @reg.register("a")
    def build_a():
        """Builds a.

        More text that is not the description."""

    assert reg.names() == ["a", "b"]
    assert reg.get("a") is build_a
    assert reg.entry("a").description == "Builds a."
    assert "b" in reg and "c" not in reg


def test_duplicate_registration_is_an_error():
    reg = Registry("widget")
    reg.register("x")(lambda: None)
    with pytest.raises(ValueError, match="widget 'x' is already registered"):
        reg.register("x")(lambda: None)


@pytest.mark.parametrize(
    ("kind", "typo", "hint"),
    [("model", "cnnn", "did you mean 'cnn'"), ("optimizer", "adm", "did you mean 'adam'"),
     ("dataset", "fashion_mnist", "did you mean 'fashionmnist'")],
)
def test_unknown_name_lists_valid_ones_with_a_suggestion(kind, typo, hint):
    registry = REGISTRIES[kind]
    with pytest.raises(UserError, match=f"unknown {kind} '{typo}'; {hint}") as err:
        registry.get(typo)
    for name in registry.names():
        assert name in str(err.value)


def test_unknown_name_without_close_match_has_no_suggestion():
    with pytest.raises(UserError) as err:
        REGISTRIES["model"].get("transformer")
    assert "did you mean" not in str(err.value)
    assert "valid: cnn, cnn1d, gru, lenet, lstm, mlp" in str(err.value)


def test_every_built_in_component_has_a_description():
    for registry in REGISTRIES.values():
        for entry in registry:
            assert entry.description, f"{registry.kind} '{entry.name}' has no docstring"
