"""The floor: a bare FastAPI endpoint that ignores the request and returns a constant JSON answer."""

from fastapi import FastAPI

from ..tool import EXPECTED_STRUCTURED

app = FastAPI()

# The same shape and size as a tools/call answer, so the floor serialises comparable bytes.
_ANSWER = {
    "jsonrpc": "2.0",
    "id": 1,
    "result": {
        "content": [{"type": "text", "text": '{"result":1}'}],
        "structuredContent": EXPECTED_STRUCTURED,
        "isError": False,
    },
}


@app.post("/mcp")
async def mcp() -> dict:
    return _ANSWER
