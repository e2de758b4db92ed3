"""langchain-core fake chat models, extended only where a test needs a behaviour they lack."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult


def tool_answer(approve: Any, confidence: Any, reason: Any) -> AIMessage:
    """An AIMessage carrying a ``Review`` tool call, as a tool-calling model answers."""
    return AIMessage(
        content="",
        tool_calls=[{"name": "Review", "args": {"approve": approve, "confidence": confidence, "reason": reason},
                     "id": "call_1", "type": "tool_call"}],
    )


class ToolCallingFake(GenericFakeChatModel):
    """GenericFakeChatModel that accepts ``bind_tools`` like DeepSeek/Gemini do."""

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> ToolCallingFake:
        return self


class HangingFake(GenericFakeChatModel):
    """Awaits an event that never fires (a provider that never answers)."""

    async def _agenerate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class FailingFake(GenericFakeChatModel):
    """Raises like a provider whose connection failed."""

    error: str = "connection refused"

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        raise ConnectionError(self.error)


class GatedFake(GenericFakeChatModel):
    """Counts concurrent calls and holds each until ``state['gate']`` is set."""

    state: Any  # a dict shared with the test (Any: pydantic must not copy it)

    async def _agenerate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        st = self.state
        st["active"] += 1
        st["max"] = max(st["max"], st["active"])
        try:
            await st["gate"].wait()
        finally:
            st["active"] -= 1
        text = '{"approve": true, "confidence": 0.8, "reason": "ok"}'
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])
