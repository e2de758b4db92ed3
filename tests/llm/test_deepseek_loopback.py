"""The real ChatDeepSeek client (OpenAI wire format) against a loopback server.

DeepSeek's servers cannot run here; a local HTTP server answers ``POST /v1/chat/completions``
in the documented OpenAI-compatible format, and ``DEEPSEEK_API_BASE`` points the real
client at it. This checks what the fakes cannot: the tool-calling request our
``Review`` schema produces, the model name and temperature sent, and HTTP errors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from daytrading.config import LLMSettings
from daytrading.llm.review import build_reviewer

KEY = "sk-loopback-SECRET-9f8e7d"
CONTEXT = {"symbol": "AMD", "rule": "standard", "price": 150.2, "vwap": 149.8, "rsi": 52.0}


def completion(arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "deepseek-chat",
        "choices": [{
            "index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "Review", "arguments": json.dumps(arguments)},
            }]},
        }],
        "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
    }


@contextmanager
def openai_stub(status: int, body: Any) -> Iterator[dict[str, Any]]:
    seen: dict[str, Any] = {"requests": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            seen["requests"].append((self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(self.rfile.read(length))))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    seen["base"] = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_real_deepseek_client_structured_answer(monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with openai_stub(200, completion({"approve": True, "confidence": 0.77, "reason": "trend intact"})) as seen:
        monkeypatch.setenv("DEEPSEEK_API_BASE", seen["base"])
        reviewer = build_reviewer(LLMSettings(deepseek_api_key=SecretStr(KEY), timeout=10))
        result = asyncio.run(reviewer.review(CONTEXT))
    assert (result.approved, result.source, result.reason) == (True, "deepseek", "trend intact")
    assert result.confidence == pytest.approx(0.77)
    path, headers, body = seen["requests"][0]
    assert path == "/v1/chat/completions"
    assert headers["authorization"] == f"Bearer {KEY}"
    assert body["model"] == "deepseek-chat" and body["temperature"] == pytest.approx(0.1)
    assert body["tools"][0]["function"]["name"] == "Review"
    assert set(body["tools"][0]["function"]["parameters"]["properties"]) == {"approve", "confidence", "reason"}
    assert json.loads(body["messages"][-1]["content"]) == CONTEXT
    assert KEY not in caplog.text


@pytest.mark.parametrize("status", [401, 500])
def test_real_deepseek_client_http_error_is_a_logged_failure(
    status: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"error": {"message": f"Authentication Fails, your api key: {KEY} is invalid",
                      "type": "authentication_error", "code": "invalid_request_error"}}
    with openai_stub(status, body) as seen:
        monkeypatch.setenv("DEEPSEEK_API_BASE", seen["base"])
        reviewer = build_reviewer(LLMSettings(deepseek_api_key=SecretStr(KEY), timeout=10, on_failure="reject"))
        result = asyncio.run(reviewer.review(CONTEXT))
    assert (result.approved, result.source) == (False, "error")
    assert str(status) in result.reason
    assert KEY not in result.reason
    out = capsys.readouterr()
    assert KEY not in caplog.text and KEY not in out.out and KEY not in out.err
