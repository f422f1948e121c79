"""Multi-round-trip input (MCP 2026-07-28): the ``InputChannel`` of a stateless server.

A tool that awaits ``ctx.elicit(...)`` with no answer at hand does not wait: the call ends with
an ``InputRequiredResult`` (``inputRequests`` keyed by name, and a ``requestState``), and the
client retries the same request with ``inputResponses``. The tool then runs again from the top;
each ask it already had answered returns at once, from the retry's ``inputResponses`` or from the
answers of earlier rounds sealed into ``requestState``. So any replica can serve any round: all
it needs is the key that seals the state, which every replica shares (``DEVENV_STATE_SECRET``).

Asks made together (``asyncio.gather(ctx.elicit(...), ctx.sample(...))``) go out in one round.
Side effects a tool makes before its asks run once per round: put them after.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import time
from typing import Any

import orjson

from .context import CAPABILITY_OF, check_input_result

__all__ = ["InputRequired", "InvalidInput", "MultiRoundChannel", "StateSealer"]

#: How long a requestState stays good: long enough for a user to fill a form, short enough to
#: bound a replay.
STATE_TTL_SECONDS = 900


class RoundTripSignal(BaseException):
    """Control flow out of a tool, through its own ``except Exception`` (as CancelledError is)."""


class InputRequired(RoundTripSignal):
    """The tool asked for input the request does not carry: answer with an InputRequiredResult."""


class InvalidInput(RoundTripSignal):
    """The client's ``inputResponses`` or ``requestState`` are malformed or forged (-32602)."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StateSealer:
    """Seals and opens ``requestState``: HMAC-SHA256 over the answers so far, the request they
    belong to (a digest of its method, name and arguments), and an expiry. (No principal: a
    service's callers share one bearer token, so the key already binds the state to them.)"""

    def __init__(self, key: bytes | None) -> None:
        # No shared key (a laptop, one process): one made up for this process. A retry that lands
        # on another process then fails the check and the client starts over.
        self._key = key or secrets.token_bytes(32)

    @staticmethod
    def request_digest(method: str, name: Any, arguments: Any) -> str:
        body = orjson.dumps([method, name, arguments or {}], option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(body).hexdigest()[:32]

    def seal(self, digest: str, answers: dict[str, Any], now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + STATE_TTL_SECONDS)
        payload = _b64(orjson.dumps({"v": 1, "req": digest, "exp": expires, "answers": answers}))
        return f"{payload}.{_b64(self._mac(payload))}"

    def open(self, state: Any, digest: str, now: float | None = None) -> dict[str, Any]:
        """The answers sealed in ``state``; ``InvalidInput`` says why it cannot be trusted."""
        if not isinstance(state, str):
            raise InvalidInput(f"requestState must be the string the server sent, got {type(state).__name__}")
        payload, _, mac = state.partition(".")
        try:
            good = hmac.compare_digest(_unb64(mac), self._mac(payload))
        except (binascii.Error, ValueError):
            good = False
        if not good:
            raise InvalidInput("requestState failed its integrity check: it was altered, or sealed by another key")
        content = orjson.loads(_unb64(payload))  # sealed by us: well-formed
        if content.get("req") != digest:
            raise InvalidInput("requestState belongs to another request (method, name, arguments or caller differ)")
        if content.get("exp", 0) < (time.time() if now is None else now):
            raise InvalidInput("requestState has expired; call again without it to start over")
        return content["answers"]

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).digest()


class MultiRoundChannel:
    """One round of one request: the answers it carries, and the asks it could not answer."""

    def __init__(
        self,
        sealer: StateSealer,
        digest: str,
        capabilities: dict[str, Any],
        responses: dict[str, Any],
        answered: dict[str, Any],
    ) -> None:
        self.sealer = sealer
        self.digest = digest
        self.capabilities = capabilities
        self.responses = responses  # this round's inputResponses, checked when asked for
        self.answered = answered  # earlier rounds' answers, out of requestState: trusted
        self.pending: dict[str, dict[str, Any]] = {}
        self._counts: dict[str, int] = {}

    @classmethod
    def for_request(
        cls, sealer: StateSealer, method: str, params: dict[str, Any], capabilities: dict[str, Any]
    ) -> MultiRoundChannel:
        """The channel for one 2026-07-28 request; ``InvalidInput`` if its input fields are bad."""
        responses = params.get("inputResponses")
        if responses is None:
            responses = {}
        elif not isinstance(responses, dict):
            kind = type(responses).__name__
            raise InvalidInput(f"inputResponses must be an object keyed like inputRequests, got {kind}")
        digest = sealer.request_digest(method, params.get("name"), params.get("arguments"))
        state = params.get("requestState")
        answered = {} if state is None else sealer.open(state, digest)
        return cls(sealer, digest, capabilities, responses, answered)

    def result(self) -> dict[str, Any]:
        """The InputRequiredResult for the asks of this round."""
        return {
            "resultType": "input_required",
            "inputRequests": self.pending,
            "requestState": self.sealer.seal(self.digest, self.answered),
        }

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    async def request(self, method: str, params: dict[str, Any], key: str | None) -> dict[str, Any]:
        if key is None:  # the n-th ask of a kind; stable across rounds as long as the tool asks in order
            prefix = CAPABILITY_OF[method]  # elicitation_1, sampling_1, roots_1, ...
            self._counts[prefix] = self._counts.get(prefix, 0) + 1
            key = f"{prefix}_{self._counts[prefix]}"
        if key in self.answered:
            return self.answered[key]
        if key in self.responses:
            answer = self.responses[key]
            wrong = check_input_result(method, answer)
            if wrong is not None:
                raise InvalidInput(f"inputResponses[{key!r}] {wrong}")
            self.answered[key] = answer
            return answer
        if key in self.pending:
            raise ValueError(f"two input requests in one round share the key {key!r}")
        self.pending[key] = {"method": method, "params": params}
        await asyncio.sleep(0)  # asks gathered with this one register too before the round ends
        raise InputRequired(key)
