"""``devenv new NAME``: what it writes, and that a bad name is a clear error that touches nothing."""

from __future__ import annotations

import pytest

from .test_check import PORT, devenv, make_project


def snapshot(project):
    return {p.relative_to(project): p.read_bytes() for p in sorted(project.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("new"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("jd-classifier", "service 'jd-classifier' exists already (services/jd_classifier/); choose another name"),
        ("Weather", "'Weather' is not a valid service name: use lowercase words joined by '-'"),
        ("9lives", "'9lives' is not a valid service name"),
        ("snake_case", "'snake_case' is not a valid service name"),
        ("weather-", "'weather-' is not a valid service name"),
        ("class", "'class' cannot be a service name: 'class' is a Python keyword"),
        ("import", "'import' cannot be a service name: 'import' is a Python keyword"),
    ],
)
def test_a_bad_name_is_a_clear_error_and_touches_nothing(pristine, name, message):
    before = snapshot(pristine)
    proc = devenv(pristine, "new", name)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert snapshot(pristine) == before


def test_new_writes_the_package_its_test_and_the_manifests(tmp_path):
    project = make_project(tmp_path)
    proc = devenv(project, "new", "weather-report")
    assert proc.returncode == 0, proc.stderr
    written = [line.split("wrote ", 1)[1] for line in proc.stdout.splitlines() if "wrote " in line]
    assert written[:3] == [
        "services/weather_report/__init__.py",
        "services/weather_report/service.py",
        "tests/unit/services/test_weather_report.py",
    ]
    assert {"k8s/base/services/weather-report.yaml", "k8s/base/services/kustomization.yaml"} <= set(written)
    source = (project / "services/weather_report/service.py").read_text()
    assert f'Service(\n    "weather-report",\n    port={PORT},' in source  # the first port no service declares
    assert '"""Greet someone by name.' in source
    again = devenv(project, "new", "weather-report")
    assert again.returncode == 1 and "exists already" in again.stderr
    second = devenv(project, "new", "forecast")
    assert second.returncode == 0, second.stderr
    assert f"port={PORT + 1}," in (project / "services/forecast/service.py").read_text()
