"""The static strategy table agrees with the classes, and listing it imports no heavy library."""

import importlib
import pkgutil
import subprocess
import sys

import pytest

import raresift.strategies
from raresift.errors import ConfigError
from raresift.strategies import STRATEGIES, make_strategy, strategy_class, strategy_names
from raresift.strategies.registry import _REGISTRY


def all_strategy_modules():
    for module in pkgutil.iter_modules(raresift.strategies.__path__):
        importlib.import_module(f"raresift.strategies.{module.name}")


def test_every_listed_strategy_is_registered_by_its_module_and_constructs():
    for name, info in STRATEGIES.items():
        cls = strategy_class(name)
        assert cls.__module__ == info.module, name
        strategy = make_strategy(name)
        assert type(strategy) is cls and strategy.name == name
        assert info.family and info.purpose and info.needs


def test_every_registered_strategy_is_listed():
    all_strategy_modules()
    built_in = {n for n, c in _REGISTRY.items() if c.__module__.startswith("raresift.")}
    assert built_in == set(STRATEGIES)
    assert strategy_names() == sorted(STRATEGIES)


def test_a_strategy_registered_elsewhere_is_constructible_and_named():
    @raresift.strategies.register_strategy("test-first-ids")
    class FirstIds(raresift.strategies.Strategy):
        pass

    try:
        assert isinstance(make_strategy("test-first-ids"), FirstIds)
        assert "test-first-ids" in strategy_names()
    finally:
        del _REGISTRY["test-first-ids"]


def test_unknown_names_and_bad_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="unknown strategy 'entropie'; choose one of: .*entropy"):
        make_strategy("entropie")
    with pytest.raises(ConfigError, match="bad parameters for strategy 'badge'"):
        make_strategy("badge", chunks=3)


def imported_after(code):
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "code",
    ["import raresift",
     "import raresift.strategies",
     "from raresift.cli import main; main(['strategies'])",
     "from raresift import SklearnModel, Pool, make_strategy; make_strategy('entropy')"],
)  # fmt: skip
def test_no_torch_and_no_faiss_until_used(code):
    modules = imported_after(code)
    assert "torch" not in modules and "faiss" not in modules
    if code == "import raresift":
        assert "sklearn" not in modules and "raresift.strategies" not in modules


def test_torch_strategies_still_import_torch_when_built():
    assert "torch" in imported_after("from raresift import make_strategy; make_strategy('fisher')")
