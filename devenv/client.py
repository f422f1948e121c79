"""MCPClient: call any tool by ``"service/tool"``; where it runs is the environment's business.

``K8S_MODE`` unset or false → the handler runs in this process. ``K8S_MODE=true`` → the
same call is an MCP ``tools/call`` over HTTP to the URL ``devenv.discovery`` resolves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from . import tracing
from .client_input import ClientInput, ElicitCallback, RootsCallback, SampleCallback
from .config import get_settings
from .tools import Registry, Service, default_registry
from .transports.base import TRACEPARENT, Transport, check_traceparent
from .transports.inprocess import InProcessTransport

__all__ = ["TRACEPARENT", "MCPClient"]

ProgressCallback = Callable[[float, float | None, str | None], Any]

Mode = Literal["auto", "inprocess", "http"]


def split_uri(uri: str) -> tuple[str, str]:
    service, sep, tool = uri.partition("/")
    if not (sep and service and tool) or "/" in tool:
        raise ValueError(f"a tool is named 'service/tool', like 'jd-classifier/find_category'; got {uri!r}")
    return service, tool


class MCPClient:
    """Calls tools by URI. Use one client for many calls: it pools connections.

    ``mode="auto"`` (the default) reads ``K8S_MODE`` once, when the client is made.
    ``services=[...]`` (in-process) serves just those services, handy in unit tests.
    Over HTTP: ``timeout`` (``DEVENV_TIMEOUT``) bounds a whole call, retries included;
    ``retries`` (``DEVENV_RETRIES``) applies to idempotent tools only; the bearer token is
    ``auth_token`` or ``DEVENV_AUTH_TOKEN`` / ``DEVENV_AUTH_TOKEN_FILE``.

    Per call (or as defaults here): ``on_progress(progress, total, message)`` gets the
    server's progress notifications. A tool's requests for input are answered by callbacks,
    in-process and over HTTP alike, and the client declares exactly the capabilities it has
    callbacks for: ``on_elicit(params)`` (elicitation: return the answers as a dict, an
    ElicitResult, or None to decline), ``on_sample(params)`` (sampling/createMessage: a
    CreateMessageResult dict, or a str for the assistant's text), ``roots=[...]`` or
    ``on_list_roots()`` (roots/list: ``file://`` URIs or ``{"uri": ...}`` dicts). Callbacks may
    be async with ``acall``. ``traceparent`` (else ``TRACEPARENT``'s value, else the active
    OpenTelemetry span) goes to the server in ``_meta``.
    """

    def __init__(
        self,
        *,
        mode: Mode = "auto",
        transport: Transport | None = None,
        services: list[Service] | None = None,
        registry: Registry | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        headers: dict[str, str] | None = None,
        auth_token: str | None = None,
        on_progress: ProgressCallback | None = None,
        on_elicit: ElicitCallback | None = None,
        on_sample: SampleCallback | None = None,
        roots: list[Any] | None = None,
        on_list_roots: RootsCallback | None = None,
    ) -> None:
        if mode not in ("auto", "inprocess", "http"):
            raise ValueError(f"mode must be 'auto', 'inprocess' or 'http', got {mode!r}")
        if transport is None:
            settings = get_settings()
            if mode == "auto":
                mode = "http" if settings.k8s_mode else "inprocess"
            if mode == "http":
                from .transports.http import HTTPTransport  # httpx loads only when going remote

                transport = HTTPTransport(
                    timeout=timeout or settings.timeout,
                    retries=settings.retries if retries is None else retries,
                    headers=headers,
                    auth_token=auth_token or settings.auth_token,
                )
            else:
                if registry is None:
                    registry = Registry(None, services) if services is not None else default_registry()
                transport = InProcessTransport(registry)
        self.transport = transport
        self.mode = "inprocess" if isinstance(transport, InProcessTransport) else "http"
        if on_progress is not None and not callable(on_progress):
            raise TypeError(f"on_progress must be callable, got {type(on_progress).__name__}")
        self._on_progress = on_progress
        self._answers = ClientInput(on_elicit=on_elicit, on_sample=on_sample, roots=roots, on_list_roots=on_list_roots)
        self._plain = self._options(None, None, None)  # the common case, built once
        if hasattr(transport, "session_answers"):
            transport.session_answers = self._answers  # what a legacy session declares at initialize
        self.transport = tracing.traced_transport(transport, inprocess=self.mode == "inprocess")  # as is when off

    def __repr__(self) -> str:
        return f"MCPClient(mode={self.mode!r})"

    def _options(self, on_progress: Any, answers: ClientInput | None, traceparent: str | None) -> Any:
        from .transports.http import CallOptions  # no httpx behind it: plain dataclasses

        if traceparent is not None:
            check_traceparent(traceparent)
        if on_progress is not None and not callable(on_progress):
            raise TypeError(f"on_progress must be callable, got {type(on_progress).__name__}")
        answers = self._answers if answers is None else answers.over(self._answers)
        return CallOptions(on_progress or self._on_progress, answers, traceparent)

    def _call_options(self, on_progress: Any, inputs: dict[str, Any], traceparent: str | None) -> Any:
        if on_progress is None and traceparent is None and not any(v is not None for v in inputs.values()):
            return self._plain
        answers = ClientInput(**inputs) if any(v is not None for v in inputs.values()) else None
        return self._options(on_progress, answers, traceparent)

    def _elicit_only(self, on_elicit: Any) -> Any:
        return self._call_options(None, {"on_elicit": on_elicit}, None)

    def call(
        self,
        uri: str,
        arguments: dict[str, Any] | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        on_elicit: ElicitCallback | None = None,
        on_sample: SampleCallback | None = None,
        roots: list[Any] | None = None,
        on_list_roots: RootsCallback | None = None,
        traceparent: str | None = None,
    ) -> Any:
        """Call ``"service/tool"`` with JSON ``arguments`` and return its JSON result."""
        service, tool = split_uri(uri)
        if on_progress is on_elicit is on_sample is roots is on_list_roots is traceparent is None:
            options = self._plain  # the common case costs one comparison chain
        else:
            inputs = {"on_elicit": on_elicit, "on_sample": on_sample, "roots": roots, "on_list_roots": on_list_roots}
            options = self._call_options(on_progress, inputs, traceparent)
        return self.transport.call_tool(service, tool, arguments or {}, options)

    async def acall(
        self,
        uri: str,
        arguments: dict[str, Any] | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        on_elicit: ElicitCallback | None = None,
        on_sample: SampleCallback | None = None,
        roots: list[Any] | None = None,
        on_list_roots: RootsCallback | None = None,
        traceparent: str | None = None,
    ) -> Any:
        service, tool = split_uri(uri)
        if on_progress is on_elicit is on_sample is roots is on_list_roots is traceparent is None:
            options = self._plain  # the common case costs one comparison chain
        else:
            inputs = {"on_elicit": on_elicit, "on_sample": on_sample, "roots": roots, "on_list_roots": on_list_roots}
            options = self._call_options(on_progress, inputs, traceparent)
        return await self.transport.acall_tool(service, tool, arguments or {}, options)

    def list_tools(self, service: str) -> list[dict[str, Any]]:
        """The service's tools as MCP ``tools/list`` describes them."""
        return self.transport.list_tools(service)

    async def alist_tools(self, service: str) -> list[dict[str, Any]]:
        return await self.transport.alist_tools(service)

    # -- resources and prompts ----------------------------------------------------------------

    def list_resources(self, service: str) -> list[dict[str, Any]]:
        """The service's resources (``resources/list``, every page)."""
        return self.transport.list_all(service, "resources/list", "resources")

    async def alist_resources(self, service: str) -> list[dict[str, Any]]:
        return await self.transport.alist_all(service, "resources/list", "resources")

    def read_resource(self, service: str, uri: str, *, on_elicit: ElicitCallback | None = None) -> list[dict]:
        """The ``contents`` of resource ``uri`` (each with ``uri`` and ``text`` or ``blob``)."""
        result = self.transport.request(
            service, "resources/read", {"uri": _text("uri", uri)}, self._elicit_only(on_elicit)
        )
        return result.get("contents", [])

    async def aread_resource(self, service: str, uri: str, *, on_elicit: ElicitCallback | None = None) -> list[dict]:
        result = await self.transport.arequest(
            service, "resources/read", {"uri": _text("uri", uri)}, self._elicit_only(on_elicit)
        )
        return result.get("contents", [])

    def list_prompts(self, service: str) -> list[dict[str, Any]]:
        """The service's prompts (``prompts/list``, every page)."""
        return self.transport.list_all(service, "prompts/list", "prompts")

    async def alist_prompts(self, service: str) -> list[dict[str, Any]]:
        return await self.transport.alist_all(service, "prompts/list", "prompts")

    def get_prompt(
        self,
        service: str,
        name: str,
        arguments: dict[str, str] | None = None,
        *,
        on_elicit: ElicitCallback | None = None,
    ) -> dict[str, Any]:
        """The prompt ``name`` rendered with ``arguments``: ``{"description"?, "messages": [...]}``."""
        params = {"name": _text("name", name), "arguments": arguments or {}}
        return self.transport.request(service, "prompts/get", params, self._elicit_only(on_elicit))

    async def aget_prompt(
        self,
        service: str,
        name: str,
        arguments: dict[str, str] | None = None,
        *,
        on_elicit: ElicitCallback | None = None,
    ) -> dict[str, Any]:
        params = {"name": _text("name", name), "arguments": arguments or {}}
        return await self.transport.arequest(service, "prompts/get", params, self._elicit_only(on_elicit))

    def close(self) -> None:
        self.transport.close()

    async def aclose(self) -> None:
        await self.transport.aclose()

    def __enter__(self) -> MCPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> MCPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _text(what: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value
