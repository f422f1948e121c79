"""devenv.kit.compose: the Compose file for Tilt's docker target, from the Service declarations."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from devenv import Service
from devenv.kit.compose import compose_file
from devenv.tools import Registry

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_declared_service_at_its_port_under_its_service_name():
    registry = Registry("services")
    services = [registry.get(n) for n in registry.names()]
    doc = compose_file(services, redis_image="redis:7-alpine", folders={"VAULT_ROOT": "/v"})
    assert set(doc["services"]) == {"redis", *registry.names()}
    for s in services:
        entry = doc["services"][s.name]
        assert entry["ports"] == [f"127.0.0.1:{s.port}:8080"]
        assert entry["networks"]["default"]["aliases"] == [f"{s.name}-service"]
        assert entry["environment"]["K8S_MODE"] == "true"
        assert entry["environment"]["VAULT_ROOT"] == "/v" and entry["volumes"] == ["/v:/v"]


def test_a_service_without_a_port_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"services \['portless'\] declare no port"):
        compose_file([Service("portless")], redis_image="redis", folders={})


def test_an_unknown_service_is_refused_naming_the_choices(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "devenv.kit.compose", "file", "--services", "jd-classifier,nope"],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "VAULT_ROOT": str(tmp_path / "v"), "UNSORTED_ROOT": str(tmp_path / "u")},
    )  # fmt: skip
    assert proc.returncode == 1
    assert "unknown service 'nope'; choose from conformance," in proc.stderr
    assert proc.stdout == ""


def test_build_with_an_empty_ref_says_so():
    """What a custom_build without $EXPECTED_REF would pass."""
    proc = subprocess.run(
        [sys.executable, "-m", "devenv.kit.compose", "build", "jd-classifier", "--ref", ""],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "--ref is empty (the Tiltfile passes Tilt's $EXPECTED_REF)" in proc.stderr


def test_the_file_renders_through_the_cli(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "devenv.kit.compose", "file", "--services", "jd-classifier"],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "VAULT_ROOT": str(tmp_path / "v"), "UNSORTED_ROOT": str(tmp_path / "u")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert set(yaml.safe_load(proc.stdout)["services"]) == {"redis", "jd-classifier"}
    assert (tmp_path / "v").is_dir(), "the host folders exist before Compose binds them"
