"""LLM review with langchain-core's fake chat models: approve, reject, timeout, garbage, fallback."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel, FakeMessagesListChatModel
from pydantic import SecretStr

from daytrading.config import LLMSettings
from daytrading.llm.review import build_reviewer, heuristic_review
from tests.llm.fakes import FailingFake, GatedFake, HangingFake, ToolCallingFake, tool_answer

CONTEXT = {"symbol": "TSLA", "rule": "standard", "price": 101.0, "vwap": 100.0, "rsi": 55.0,
           "atr_pct": 0.006, "relative_volume": 3.0}


def run(coro):
    return asyncio.run(coro)


def test_tool_calling_model_approves() -> None:
    model = ToolCallingFake(messages=iter([tool_answer(True, 0.82, "clean breakout\nabove VWAP")]))
    reviewer = build_reviewer(LLMSettings(), model=model)
    assert reviewer.mode == "llm" and reviewer.sources == ("deepseek",)
    result = run(reviewer.review(CONTEXT))
    assert result.approved and result.source == "deepseek"
    assert result.confidence == pytest.approx(0.82)
    assert result.reason == "clean breakout above VWAP"  # one line


def test_text_model_rejects_via_json_parsing() -> None:
    model = FakeListChatModel(responses=['{"approve": false, "confidence": 0.9, "reason": "RSI exhausted"}'])
    result = run(build_reviewer(LLMSettings(), model=model).review(CONTEXT))
    assert (result.approved, result.confidence, result.reason, result.source) == (
        False, pytest.approx(0.9), "RSI exhausted", "deepseek")


def test_min_confidence_turns_a_weak_approval_into_a_rejection() -> None:
    model = ToolCallingFake(messages=iter([tool_answer(True, 0.3, "maybe")]))
    result = run(build_reviewer(LLMSettings(min_confidence=0.5), model=model).review(CONTEXT))
    assert not result.approved
    assert "confidence 0.30 below llm.min_confidence 0.50" in result.reason


@pytest.mark.parametrize("on_failure", ["reject", "pass"])
def test_timeout_is_bounded_and_follows_on_failure(on_failure: str, caplog: pytest.LogCaptureFixture) -> None:
    reviewer = build_reviewer(LLMSettings(timeout=0.2, on_failure=on_failure), model=HangingFake(messages=iter([])))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="daytrading.llm.review"):
        result = run(reviewer.review(CONTEXT))
    assert time.monotonic() - started < 5
    assert result.source == "timeout"
    assert result.approved is (on_failure == "pass")
    assert result.confidence == 0.0
    assert "no answer within 0.2 s" in result.reason
    assert any("timeout" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "model",
    [
        FakeListChatModel(responses=["Sure, looks great to me!"]),
        FakeListChatModel(responses=['{"approve": "perhaps", "confidence": 0.9, "reason": "x"}']),
        ToolCallingFake(messages=iter([tool_answer(True, 5.0, "very sure")])),  # confidence out of range
        ToolCallingFake(messages=iter(["no tool call at all"])),
        FakeMessagesListChatModel(responses=[tool_answer(True, 0.9, None)]),  # no bind_tools, no JSON
    ],
    ids=["prose", "bad-bool", "confidence-5", "no-tool-call", "messages-list"],
)
def test_garbage_answers_are_failures_not_crashes(model) -> None:
    reviewer = build_reviewer(LLMSettings(on_failure="reject"), model=model)
    result = run(reviewer.review(CONTEXT))
    assert result.source == "error" and not result.approved
    assert "rejected per llm.on_failure" in result.reason
    assert "\n" not in result.reason


def test_primary_failing_uses_the_fallback() -> None:
    primary = FailingFake(messages=iter([]), error="deepseek 503")
    fallback = FakeListChatModel(responses=['{"approve": true, "confidence": 0.7, "reason": "gemini says ok"}'])
    reviewer = build_reviewer(LLMSettings(), model=primary, fallback=fallback)
    assert reviewer.sources == ("deepseek", "gemini")
    result = run(reviewer.review(CONTEXT))
    assert (result.approved, result.source, result.reason) == (True, "gemini", "gemini says ok")


def test_primary_garbage_uses_the_fallback_and_both_failing_is_an_error(caplog: pytest.LogCaptureFixture) -> None:
    primary = FakeListChatModel(responses=["???"])
    fallback = ToolCallingFake(messages=iter([tool_answer(False, 0.6, "extended")]))
    result = run(build_reviewer(LLMSettings(), model=primary, fallback=fallback).review(CONTEXT))
    assert (result.approved, result.source) == (False, "gemini")

    both = build_reviewer(LLMSettings(on_failure="pass"), model=FailingFake(messages=iter([])),
                          fallback=FailingFake(messages=iter([]), error="gemini down"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="daytrading.llm.review"):
        result = run(both.review(CONTEXT))
    assert (result.approved, result.source) == (True, "error")
    assert "all of deepseek, gemini failed; deepseek: ConnectionError: connection refused" in result.reason
    failures = [r.getMessage() for r in caplog.records if "failed:" in r.getMessage()]
    assert failures[:2] == ["LLM review: deepseek failed: ConnectionError: connection refused",
                            "LLM review: gemini failed: ConnectionError: gemini down"]


def test_at_most_max_parallel_reviews_run_at_once() -> None:
    async def scenario() -> dict:
        state = {"active": 0, "max": 0, "gate": asyncio.Event()}
        reviewer = build_reviewer(LLMSettings(max_parallel=3, timeout=30), model=GatedFake(messages=iter([]), state=state))
        tasks = [asyncio.create_task(reviewer.review({**CONTEXT, "symbol": f"S{i}"})) for i in range(10)]
        deadline = time.monotonic() + 10
        while state["active"] < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        # give the other seven every chance to (wrongly) start
        for _ in range(20):
            await asyncio.sleep(0)
        assert state["active"] == 3
        state["gate"].set()
        results = await asyncio.gather(*tasks)
        assert all(r.approved for r in results)
        return state

    state = run(scenario())
    assert state["max"] == 3 and state["active"] == 0


def test_no_keys_means_heuristic_mode_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="daytrading.llm.review"):
        reviewer = build_reviewer(LLMSettings())
    assert reviewer.mode == "heuristic"
    assert [r.getMessage() for r in caplog.records] == [
        "LLM review in heuristic-only mode: no DeepSeek or Gemini API key"]
    result = run(reviewer.review(CONTEXT))
    assert result.source == "heuristic" and result.approved
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="daytrading.llm.review"):
        disabled = build_reviewer(LLMSettings(enabled=False, deepseek_api_key=SecretStr("sk-abc")))
    assert disabled.mode == "heuristic"
    assert "llm.enabled is false" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    ("context", "approved", "fragment"),
    [
        (CONTEXT, True, "RSI 55.0 < 70"),
        ({**CONTEXT, "rsi": 75.0}, False, "overbought"),
        ({**CONTEXT, "price": 99.0}, False, "below VWAP"),
        ({**CONTEXT, "price": 99.0, "rule": "gap_and_go"}, True, "relative volume"),
        ({**CONTEXT, "price": 102.5}, False, "extended 2.50% above VWAP"),
        ({**CONTEXT, "relative_volume": 1.0}, False, "relative volume 1.0× < 1.5×"),
        ({"symbol": "X"}, True, "no indicator values"),
        ({**CONTEXT, "rsi": "not a number", "vwap": None}, True, "relative volume"),
        ({"symbol": "X", "price": 101.0, "compared": {"vwap": 100.0, "rsi": 72.0}}, False, "overbought"),
    ],
)
def test_heuristic_rules(context: dict, approved: bool, fragment: str) -> None:
    result = heuristic_review(context)
    assert result.approved is approved and fragment in result.reason
    assert 0.5 <= result.confidence <= 0.9


def test_heuristic_min_confidence_applies() -> None:
    reviewer = build_reviewer(LLMSettings(min_confidence=0.8))
    assert not run(reviewer.review({"symbol": "X", "rsi": 50})).approved  # 0.6 < 0.8
    assert run(reviewer.review(CONTEXT)).approved  # 4 checks → 0.9


def test_keys_are_never_logged_or_returned(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    ds_key, gm_key = "sk-deepseek-SECRET-1234", "AIza-gemini-SECRET-5678"
    settings = LLMSettings(deepseek_api_key=SecretStr(ds_key), gemini_api_key=SecretStr(gm_key))
    caplog.set_level(logging.DEBUG)
    real = build_reviewer(settings)  # builds ChatDeepSeek + ChatGoogleGenerativeAI, no request
    assert real.mode == "llm" and real.sources == ("deepseek", "gemini")
    assert ds_key not in repr(real._chain) and gm_key not in repr(real._chain)
    # a provider error that echoes the key is redacted before logging/returning
    leaky = build_reviewer(settings, model=FailingFake(messages=iter([]), error=f"401 invalid key {ds_key}"),
                           fallback=FailingFake(messages=iter([]), error=f"403 key {gm_key} revoked"))
    result = run(leaky.review(CONTEXT))
    assert result.source == "error"
    assert ds_key not in result.reason and gm_key not in result.reason and "***" in result.reason
    out = capsys.readouterr()
    for text in (caplog.text, out.out, out.err, *(repr(r.__dict__) for r in caplog.records)):
        assert ds_key not in text and gm_key not in text
