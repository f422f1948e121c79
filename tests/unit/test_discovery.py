"""devenv.discovery: service name → base URL, from explicit environ mappings and registries."""

from __future__ import annotations

import pytest

from devenv.discovery import env_var_for, service_url
from devenv.errors import ConfigError, ServiceNotFound
from devenv.tools import Registry, Service


@pytest.fixture
def registry() -> Registry:
    """Services with and without a port, and no package on disk to fall back to."""
    return Registry(
        package="devenv_test_no_such_package",
        services=[Service("jd-classifier", port=8101), Service("notifications", port=8104), Service("no-port")],
    )


@pytest.mark.parametrize(
    ("service", "var"),
    [
        ("jd-classifier", "DEVENV_URL_JD_CLASSIFIER"),
        ("notifications", "DEVENV_URL_NOTIFICATIONS"),
        ("a1-b2", "DEVENV_URL_A1_B2"),
    ],
)
def test_env_var_for(service, var):
    assert env_var_for(service) == var


def test_default_is_the_kubernetes_service_name():
    assert service_url("jd-classifier", {}) == "http://jd-classifier-service:8080"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
        ("http://gateway.test/jd//", "http://gateway.test/jd"),
    ],
)
def test_explicit_url_wins_with_trailing_slashes_stripped(value, expected, registry):
    environ = {"DEVENV_URL_JD_CLASSIFIER": value, "DEVENV_URL_TEMPLATE": "http://template.test:{port}"}
    assert service_url("jd-classifier", environ, registry) == expected


def test_explicit_url_of_another_service_does_not_apply():
    environ = {"DEVENV_URL_NOTIFICATIONS": "http://127.0.0.1:9999"}
    assert service_url("jd-classifier", environ) == "http://jd-classifier-service:8080"


def test_empty_explicit_url_falls_through():
    environ = {"DEVENV_URL_JD_CLASSIFIER": "", "DEVENV_URL_TEMPLATE": "http://{service}.test"}
    assert service_url("jd-classifier", environ) == "http://jd-classifier.test"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("http://{service}:8080", "http://jd-classifier:8080"),
        ("http://{service}-svc.ns.svc.cluster.local/", "http://jd-classifier-svc.ns.svc.cluster.local"),
        ("http://gateway.test/{package}", "http://gateway.test/jd_classifier"),
        ("http://127.0.0.1:{port}", "http://127.0.0.1:8101"),
        ("http://{service}.test:{port}/{package}", "http://jd-classifier.test:8101/jd_classifier"),
    ],
)
def test_template_fields(template, expected, registry):
    assert service_url("jd-classifier", {"DEVENV_URL_TEMPLATE": template}, registry) == expected


def test_template_without_port_needs_no_registry_entry():
    # {service} alone must work for names no registry knows (a service written elsewhere).
    empty = Registry(package="devenv_test_no_such_package")
    assert service_url("elsewhere", {"DEVENV_URL_TEMPLATE": "http://{service}.test"}, empty) == "http://elsewhere.test"


def test_port_for_a_service_without_a_port_is_a_config_error(registry):
    with pytest.raises(ConfigError) as info:
        service_url("no-port", {"DEVENV_URL_TEMPLATE": "http://127.0.0.1:{port}"}, registry)
    assert "{port}" in str(info.value)
    assert "'no-port' declares no port" in str(info.value)


def test_port_for_an_unknown_service_is_service_not_found(registry):
    with pytest.raises(ServiceNotFound) as info:
        service_url("unknown", {"DEVENV_URL_TEMPLATE": "http://127.0.0.1:{port}"}, registry)
    assert info.value.service == "unknown"
    assert info.value.known == ["jd-classifier", "no-port", "notifications"]


@pytest.mark.parametrize(
    "name", ["JD", "jd_classifier", "", "-jd", "jd-", "jd--x", "../etc", "jd/tool", "jd classifier"]
)
def test_invalid_names_are_service_not_found(name):
    with pytest.raises(ServiceNotFound) as info:
        service_url(name, {f"DEVENV_URL_{name.upper()}": "http://x.test"})
    assert info.value.service == name


@pytest.mark.parametrize(
    "template",
    ["http://{nope}", "http://{0}", "http://{", "http://}{service}", "http://{service!z}", "http://{service:d}"],
)
def test_broken_template_is_a_config_error(template, registry):
    with pytest.raises(ConfigError) as info:
        service_url("jd-classifier", {"DEVENV_URL_TEMPLATE": template}, registry)
    assert "DEVENV_URL_TEMPLATE" in str(info.value)
    assert repr(template) in str(info.value)


def test_template_with_an_attribute_lookup_is_a_config_error(registry):
    with pytest.raises(ConfigError, match="DEVENV_URL_TEMPLATE"):
        service_url("jd-classifier", {"DEVENV_URL_TEMPLATE": "http://{service.host}"}, registry)


def test_process_environment_is_the_default(monkeypatch):
    monkeypatch.setenv("DEVENV_URL_JD_CLASSIFIER", "http://from-process.test/")
    assert service_url("jd-classifier") == "http://from-process.test"
