"""Optional LLM review of an entry candidate (the last gate before an order).

Through LangChain: DeepSeek (``langchain_deepseek.ChatDeepSeek``, ``llm.deepseek_model``
= ``deepseek-chat``, temperature ``llm.temperature`` = 0.1) first, Gemini
(``langchain_google_genai.ChatGoogleGenerativeAI``, ``llm.gemini_model``) as the fallback
through ``Runnable.with_fallbacks``. The answer is structured output, a :class:`Review`
(approve, confidence in [0, 1], one-line reason): models with tool calling use
``with_structured_output(Review)``; a model without it gets a JSON answer parsed by
``PydanticOutputParser``. An answer that does not validate counts as a failure of that
model, so the fallback is tried.

Limits: each review is bounded by ``llm.timeout`` seconds (``asyncio.timeout`` around
the primary *and* the fallback; when there is a fallback each client's own timeout is
half of that, so the fallback still gets its turn); at most ``llm.max_parallel``
reviews run at once (an ``asyncio.Semaphore``; the time spent waiting for a slot is
not part of the timeout, so a batch of N takes at most ⌈N / max_parallel⌉ × timeout).

No API key (or ``llm.enabled = false``) → heuristic-only mode, announced with one INFO
line at build time; see :func:`heuristic_review`. A timeout, a malformed answer or any
exception gives a :class:`ReviewResult` with source ``"timeout"`` / ``"error"`` that
approves or rejects per ``llm.on_failure``; it is logged, never raised (except
``asyncio.CancelledError``). An approval below ``llm.min_confidence`` becomes a
rejection. API keys are ``SecretStr``; every logged or returned text is redacted.

The review context is a JSON-serialisable dict describing the candidate; the LLM sees it
whole. The heuristic reads these keys when present (numbers or numeric strings):
``symbol``, ``rule`` (``"standard"`` or ``"gap_and_go"``), ``price`` (dollars),
``vwap`` (dollars), ``rsi`` (0–100), ``atr_pct`` (ATR / price, a fraction),
``relative_volume`` (×), ``gap_pct`` and ``change_pct`` (fractions); a key missing at
the top level is also looked up in a nested ``compared`` or ``indicators`` dict (the
entry rule's compared values).

LangChain is imported only when a model chain is built or used: the heuristic-only mode
(no key, ``llm.enabled = false``, every backtest) never loads it (about 1.7 s per process).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.runnables import Runnable, RunnableConfig

    from daytrading.config import LLMSettings

log = logging.getLogger(__name__)

Source = Literal["deepseek", "gemini", "heuristic", "timeout", "error"]

#: Heuristic thresholds (see :func:`heuristic_review`).
RSI_OVERBOUGHT = 70.0
MAX_ATR_EXTENSION = 3.0
MIN_RELATIVE_VOLUME = 1.5
REASON_MAX = 200

SYSTEM_PROMPT = (
    "You review long day-trade entry candidates for US stocks. The user message is a JSON "
    "object with the candidate's symbol, the entry rule that fired and its indicator values "
    "(prices in dollars; percentages as fractions, 0.05 = 5 %; RSI 0-100). Approve only if "
    "the entry looks sound for a short intraday hold (profit target and stop are fixed by "
    "the system); reject on clear red flags (overextended move, weak volume, exhausted RSI, "
    "data that looks wrong). Answer with the structured fields only: approve (true/false), "
    "confidence (0 to 1, how sure you are of this decision) and reason (one short line). "
    'If you answer in text, answer with JSON only: {"approve": true, "confidence": 0.7, '
    '"reason": "..."}'
)


class Review(BaseModel):
    """The structured answer asked from the model."""

    approve: bool = Field(description="true to allow the entry, false to reject it")
    confidence: float = Field(ge=0.0, le=1.0, description="confidence in this decision, 0 to 1")
    reason: str = Field(description="one short line explaining the decision")

    @field_validator("reason")
    @classmethod
    def _one_line(cls, value: str) -> str:
        line = " ".join(str(value).split())
        return line[: REASON_MAX - 1] + "…" if len(line) > REASON_MAX else line


@dataclass(frozen=True, slots=True)
class ReviewResult:
    """Outcome of one review.

    Attributes:
        approved: True = the gate passes.
        confidence: 0–1 (0.0 for failures).
        reason: one line (for the gate's rejection record).
        source: ``"deepseek"``, ``"gemini"``, ``"heuristic"``, ``"timeout"`` or ``"error"``.
        elapsed: wall seconds spent on the model call (0 for the heuristic).
    """

    approved: bool
    confidence: float
    reason: str
    source: Source
    elapsed: float = 0.0


#: Nested dicts of the context the heuristic also looks into (e.g. the entry rule's values).
NESTED_KEYS = ("compared", "indicators")


def _num(context: dict[str, Any], key: str) -> float | None:
    raw = context.get(key)
    if raw is None:
        for nest in NESTED_KEYS:
            inner = context.get(nest)
            if isinstance(inner, dict) and inner.get(key) is not None:
                raw = inner[key]
                break
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def heuristic_review(context: dict[str, Any]) -> ReviewResult:
    """Judge a candidate from its indicator values (no LLM).

    Checks, each applied only when its inputs are present:

    1. ``rsi < 70`` — not overbought (Wilder's classic overbought level).
    2. ``price ≥ vwap`` — above session VWAP; skipped for ``rule == "gap_and_go"``,
       which bypasses VWAP by design.
    3. ``price / vwap − 1 ≤ 3 × atr_pct`` — not extended more than three ATRs above
       VWAP (don't chase a move that already ran).
    4. ``relative_volume ≥ 1.5`` — volume confirms the move.

    Approved iff every applied check passes (no applicable check → approved: the entry
    rules already passed). Confidence = ``min(0.9, 0.5 + 0.1 × checks applied)``: how much
    evidence the decision rests on.
    """
    price, vwap = _num(context, "price"), _num(context, "vwap")
    rsi, atr_pct = _num(context, "rsi"), _num(context, "atr_pct")
    rel_vol = _num(context, "relative_volume")
    gap_and_go = str(context.get("rule", "")).lower() in {"gap_and_go", "gap-and-go", "gap"}
    failed: list[str] = []
    passed: list[str] = []

    def check(ok: bool, good: str, bad: str) -> None:
        (passed if ok else failed).append(good if ok else bad)

    if rsi is not None:
        check(rsi < RSI_OVERBOUGHT, f"RSI {rsi:.1f} < {RSI_OVERBOUGHT:.0f}",
              f"RSI {rsi:.1f} overbought (≥ {RSI_OVERBOUGHT:.0f})")
    if price is not None and vwap and not gap_and_go:
        check(price >= vwap, "above VWAP", f"price {price:.2f} below VWAP {vwap:.2f}")
    if price is not None and vwap and atr_pct:
        ext = price / vwap - 1.0
        check(ext <= MAX_ATR_EXTENSION * atr_pct,
              f"{ext / atr_pct:.1f} ATR from VWAP",
              f"extended {ext:.2%} above VWAP (> {MAX_ATR_EXTENSION:.0f} ATR = {MAX_ATR_EXTENSION * atr_pct:.2%})")
    if rel_vol is not None:
        check(rel_vol >= MIN_RELATIVE_VOLUME, f"relative volume {rel_vol:.1f}×",
              f"relative volume {rel_vol:.1f}× < {MIN_RELATIVE_VOLUME}×")
    applied = len(passed) + len(failed)
    confidence = min(0.9, 0.5 + 0.1 * applied)
    if failed:
        return ReviewResult(False, confidence, "heuristic: " + "; ".join(failed), "heuristic")
    reason = "heuristic: " + ("; ".join(passed) if passed else "no indicator values to judge")
    return ReviewResult(True, confidence, reason, "heuristic")


def _structured(model: Any) -> Runnable:
    """``model`` → Runnable giving a :class:`Review` (tool calling, else JSON text parsing)."""
    from langchain_core.output_parsers import PydanticOutputParser

    try:
        return model.with_structured_output(Review)
    except NotImplementedError:
        return model | PydanticOutputParser(pydantic_object=Review)


def _as_review(output: Any, source: str) -> Review:
    if isinstance(output, Review):
        return output
    if isinstance(output, dict):
        return Review.model_validate(output)
    from langchain_core.exceptions import OutputParserException

    raise OutputParserException(f"{source}: no structured answer (got {type(output).__name__})")


def _model_chain(source: str, model: Any, redact: Callable[[str], str]) -> Runnable:
    """One model as a Runnable giving ``(Review, source)``; a failure is logged (redacted) and re-raised."""
    from langchain_core.runnables import RunnableLambda

    inner = _structured(model)

    def fail(exc: Exception) -> None:
        detail = " ".join(redact(f"{type(exc).__name__}: {exc}").split())[:300]
        log.warning("LLM review: %s failed: %s", source, detail,
                    extra={"source": source})

    def call(messages: Any, config: RunnableConfig) -> tuple[Review, str]:
        try:
            return _as_review(inner.invoke(messages, config), source), source
        except Exception as exc:
            fail(exc)
            raise

    async def acall(messages: Any, config: RunnableConfig) -> tuple[Review, str]:
        try:
            return _as_review(await inner.ainvoke(messages, config), source), source
        except Exception as exc:
            fail(exc)
            raise

    return RunnableLambda(call, afunc=acall, name=f"review_{source}")


class CandidateReviewer:
    """Reviews candidates with the LLM chain, or with the heuristic when there is none.

    Build it with :func:`build_reviewer`. ``mode`` is ``"llm"`` or ``"heuristic"``;
    ``sources`` lists the model sources in fallback order (empty in heuristic mode).
    """

    def __init__(
        self,
        settings: LLMSettings,
        chain: Runnable | None,
        sources: tuple[str, ...] = (),
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        self._chain = chain
        self.sources = sources
        self.mode: Literal["llm", "heuristic"] = "llm" if chain is not None else "heuristic"
        self._secrets = tuple(s for s in secrets if s)
        self._sem: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def _set_chain(self, chain: Runnable) -> None:
        self._chain = chain
        self.mode = "llm"

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._sem is None or self._sem[0] is not loop:
            self._sem = (loop, asyncio.Semaphore(self.settings.max_parallel))
        return self._sem[1]

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def review(self, context: dict[str, Any]) -> ReviewResult:
        """Review one candidate (see the module docstring). Never raises except cancellation."""
        symbol = str(context.get("symbol", "?"))
        if self._chain is None:
            result = self._apply_min_confidence(heuristic_review(context))
        else:
            result = await self._review_llm(context)
        level = logging.WARNING if result.source in ("timeout", "error") else logging.INFO
        log.log(
            level, "LLM review %s: %s by %s (confidence %.2f): %s", symbol,
            "approved" if result.approved else "rejected", result.source, result.confidence,
            result.reason,
            extra={"symbol": symbol, "approved": result.approved, "source": result.source,
                   "confidence": result.confidence, "elapsed": round(result.elapsed, 3)},
        )
        return result

    async def _review_llm(self, context: dict[str, Any]) -> ReviewResult:
        assert self._chain is not None
        from langchain_core.messages import HumanMessage, SystemMessage

        messages = [
            SystemMessage(content=SYSTEM_PROMPT),
            HumanMessage(content=json.dumps(context, default=str, sort_keys=True)),
        ]
        timeout = self.settings.timeout
        async with self._semaphore():
            started = time.monotonic()
            try:
                async with asyncio.timeout(timeout):
                    review, source = await self._chain.ainvoke(messages)
            except TimeoutError:
                return self._failure("timeout", f"no answer within {timeout:g} s", started)
            except Exception as exc:  # malformed answers, HTTP errors, auth errors, …
                detail = self._redact(f"{type(exc).__name__}: {exc}")
                if len(self.sources) > 1:  # with_fallbacks re-raises the primary's error
                    detail = f"all of {', '.join(self.sources)} failed; {self.sources[0]}: {detail}"
                return self._failure("error", detail, started)
        result = ReviewResult(review.approve, review.confidence, self._redact(review.reason),
                              source, time.monotonic() - started)
        return self._apply_min_confidence(result)

    def _failure(self, source: Source, detail: str, started: float) -> ReviewResult:
        approve = self.settings.on_failure == "pass"
        line = " ".join(detail.split())[:REASON_MAX]
        reason = f"review {source} ({'passed' if approve else 'rejected'} per llm.on_failure): {line}"
        return ReviewResult(approve, 0.0, reason, source, time.monotonic() - started)

    def _apply_min_confidence(self, result: ReviewResult) -> ReviewResult:
        floor = self.settings.min_confidence
        if result.approved and result.confidence < floor:
            return ReviewResult(
                False, result.confidence,
                f"confidence {result.confidence:.2f} below llm.min_confidence {floor:.2f}: {result.reason}",
                result.source, result.elapsed,
            )
        return result


def _deepseek(settings: LLMSettings, client_timeout: float) -> BaseChatModel:
    from langchain_deepseek import ChatDeepSeek

    return ChatDeepSeek(
        model=settings.deepseek_model,
        api_key=settings.deepseek_api_key,
        temperature=settings.temperature,
        timeout=client_timeout,
        max_retries=1,
    )


def _gemini(settings: LLMSettings, client_timeout: float) -> BaseChatModel:
    from langchain_google_genai import ChatGoogleGenerativeAI

    return ChatGoogleGenerativeAI(
        model=settings.gemini_model,
        google_api_key=settings.gemini_api_key,
        temperature=settings.temperature,
        timeout=client_timeout,
        max_retries=1,
    )


def build_reviewer(
    llm_settings: LLMSettings,
    *,
    model: BaseChatModel | Runnable | None = None,
    fallback: BaseChatModel | Runnable | None = None,
) -> CandidateReviewer:
    """Build the reviewer from ``settings.llm``.

    Args:
        llm_settings: ``settings.llm``.
        model: a chat model to use as the primary instead of DeepSeek (tests inject
            langchain-core's fake chat models here); its answers are tagged ``"deepseek"``.
        fallback: a chat model to use as the fallback instead of Gemini (tagged
            ``"gemini"``); only used together with ``model``. An injected ``model`` is
            used even when ``llm.enabled`` is false.

    Without ``model``: DeepSeek if ``llm.deepseek_api_key`` is set, Gemini as fallback if
    ``llm.gemini_api_key`` is set (Gemini alone if only its key is set); no key or
    ``llm.enabled = false`` → heuristic-only mode, logged once here.
    """
    s = llm_settings
    secrets = (s.deepseek_api_key.get_secret_value(), s.gemini_api_key.get_secret_value())
    candidates: list[tuple[str, Any]] = []
    if model is not None:
        candidates.append(("deepseek", model))
        if fallback is not None:
            candidates.append(("gemini", fallback))
    elif s.enabled:
        has_ds, has_gm = bool(secrets[0].strip()), bool(secrets[1].strip())
        client_timeout = s.timeout / 2 if has_ds and has_gm else s.timeout
        if has_ds:
            candidates.append(("deepseek", _deepseek(s, client_timeout)))
        if has_gm:
            candidates.append(("gemini", _gemini(s, client_timeout)))
    if not candidates:
        why = "llm.enabled is false" if not s.enabled else "no DeepSeek or Gemini API key"
        log.info("LLM review in heuristic-only mode: %s", why)
        return CandidateReviewer(s, None, (), secrets)
    reviewer = CandidateReviewer(s, None, tuple(src for src, _ in candidates), secrets)
    chains = [_model_chain(src, m, reviewer._redact) for src, m in candidates]
    reviewer._set_chain(chains[0].with_fallbacks(chains[1:]) if len(chains) > 1 else chains[0])
    log.info("LLM review with %s", " then ".join(reviewer.sources),
             extra={"llm_sources": list(reviewer.sources)})
    return reviewer
