"""Every service's REST API fuzzed from its own OpenAPI schema with schemathesis (each one the registry finds).

Checks: no 5xx, every status code documented, every response body matching its documented
schema, content types and headers as documented, ... (schemathesis' defaults), except two
that judge the tools rather than the server:

- ``positive_data_acceptance``: schema-valid arguments may still name no category or no file;
  the tool then rejects them with a 400, as documented.
- ``negative_data_rejection``: pydantic's lax mode accepts ``true`` for an integer or ``"3"``
  for a number, which a JSON Schema would not; friendlier for language-model callers.

``DEVENV_FUZZ_EXAMPLES`` sets the examples per operation (small for CI; raise it by hand).
"""

from __future__ import annotations

import pytest
import schemathesis

from devenv import MemoryCache, create_app
from devenv.config import Settings
from devenv.tools import Registry
from tests.hardening import tally
from tests.hardening.tally import FUZZ

EXCLUDED = [schemathesis.checks.positive_data_acceptance, schemathesis.checks.negative_data_rejection]
# Tools that fail on every call by design: the conformance fixture's error case answers 500 on
# purpose (it is what the MCP suite checks), so fuzzing it would only find that.
# The task fixtures too: two fail by design, one sleeps for as long as it is asked.
FAILS_ON_PURPOSE = {"conformance": ["test_error_handling", "failing_job", "protocol_error_job", "slow_compute"]}


@pytest.fixture(autouse=True)
def sandbox(tmp_path_factory, monkeypatch):
    """The file-system and inbox-agent services work in throwaway folders; nothing goes remote."""
    root = tmp_path_factory.mktemp("fuzz")
    monkeypatch.setenv("VAULT_ROOT", str(root / "vault"))
    (root / "unsorted").mkdir()
    monkeypatch.setenv("UNSORTED_ROOT", str(root / "unsorted"))
    monkeypatch.delenv("K8S_MODE", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    from services.inbox_agent import service as inbox_agent

    monkeypatch.setattr(inbox_agent, "_client", None)


def _fuzz_test(name: str):
    service = Registry("services").get(name)
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(service, Settings()))
    for tool in FAILS_ON_PURPOSE.get(name, []):
        assert tool in service.tools, f"{name} has no tool {tool!r}: update FAILS_ON_PURPOSE"
        schema = schema.exclude(path=f"/tools/{tool}")

    @schema.parametrize()
    @FUZZ
    def test(case):
        service.cache = MemoryCache() if not isinstance(service._cache, MemoryCache) else service._cache
        tally.add("cases fuzzed")
        tally.add("schemathesis cases")
        # Raises on a 5xx or an answer that breaks its documented schema.
        response = case.call_and_validate(excluded_checks=EXCLUDED)
        assert response.status_code < 500, response.text

    test.__name__ = f"test_fuzz_{name.replace('-', '_')}"
    return test


# One test per service the registry finds under services/ (no hand list: `devenv new` adds one),
# each parametrized by schemathesis with one case per operation.
for _name in Registry("services").names():
    _test = _fuzz_test(_name)
    globals()[_test.__name__] = _test
del _name, _test
