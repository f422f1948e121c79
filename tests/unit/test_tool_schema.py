"""A tool's own JSON Schema 2020-12 (advertised untouched, enforced) and the client capabilities it needs."""

from __future__ import annotations

import pytest

from devenv import InvalidArguments, Service
from devenv.errors import ConfigError
from services.conformance.service import ADDRESS_FORM
from services.conformance.service import service as conformance


def test_the_schema_is_advertised_as_given():
    assert conformance.tools["json_schema_2020_12_tool"].definition()["inputSchema"] == ADDRESS_FORM


def test_the_schema_is_enforced_with_2020_12_semantics():
    tool = conformance.tools["json_schema_2020_12_tool"]
    ok = tool.run({"name": "Ada", "contactMethod": "phone", "phone": "123"})
    assert ok == [{"type": "text", "text": "contact Ada by phone 123"}]
    with pytest.raises(InvalidArguments) as no_phone:  # if contactMethod is phone, then phone is required
        tool.run({"contactMethod": "phone", "email": "a@b"})
    assert any("'phone' is a required property" in e["message"] for e in no_phone.value.errors)
    with pytest.raises(InvalidArguments) as extra:
        tool.run({"email": "a@b", "fax": "1"})
    assert "additionalProperties" in [e["type"] for e in extra.value.errors]
    with pytest.raises(InvalidArguments) as nested:
        tool.run({"email": "a@b", "address": {"city": 5}})
    assert "address.city" in nested.value.fields


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "array"}, '"type": "object"'),
        ({"type": "object", "properties": {"a": {"type": "strange"}}}, "not valid JSON Schema 2020-12"),
    ],
)
def test_a_bad_schema_is_a_config_error(schema, message):
    svc = Service("bad")
    with pytest.raises(ConfigError, match=message):
        svc.tool(name="t", input_schema=schema)(lambda: "")


def test_client_capabilities_are_kept_and_checked():
    assert conformance.tools["test_missing_capability"].client_capabilities == {"sampling": {}}
    assert conformance.tools["test_simple_text"].client_capabilities is None
    with pytest.raises(ConfigError, match="client_capabilities maps names to objects"):
        Service("bad").tool(name="t", client_capabilities={"sampling": True})(lambda: "")
