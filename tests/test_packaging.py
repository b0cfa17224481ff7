"""pyproject.toml builds without deprecation warnings, with the package's own version."""

import warnings
from pathlib import Path

import pytest

import raresift

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_applies_without_warnings(monkeypatch):
    pytest.importorskip("setuptools", minversion="77")
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    monkeypatch.chdir(ROOT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "`project.license` as a TOML table is deprecated"
        dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    assert dist.metadata.license_expression == "MIT"
    assert dist.metadata.version == raresift.__version__
