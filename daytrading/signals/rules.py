"""Entry rules: standard (VWAP / RSI / ATR) and gap-and-go.

Source: the project's original design (issue 5, "Bars and indicators", and
``docs/architecture.md``, day-trader): enter long when

* **standard**: close > session VWAP, RSI(14) < 60, ATR(14) ≥ 0.3 % of the price;
* **gap-and-go**: pre-market gap ≥ 5 % over the previous close and RSI(14) < 60;
  this rule does not look at VWAP.

The thresholds are settings (``entry.rsi_max``, ``entry.atr_min``, ``entry.gap_min``,
all fractions except RSI, which is 0–100). Whether the market is open, and every
other pre-trade check, is the gate chain's job (:mod:`daytrading.bots.gates`), not
the rule's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from daytrading.signals.indicators import Snapshot

__all__ = ["EntryRuleConfig", "RuleDecision", "evaluate", "gap_pct"]

RuleName = Literal["standard", "gap_and_go"]


@dataclass(frozen=True)
class EntryRuleConfig:
    """Entry-rule thresholds.

    Attributes:
        rsi_max: RSI must be strictly below this (0–100); 60.
        atr_min: ATR / close must be at least this FRACTION (0.003 = 0.3 %).
        gap_min: gap-and-go needs a gap of at least this FRACTION (0.05 = 5 %).
        rsi_period, atr_period: indicator periods in bars (14).
        bar_seconds: bar length the rules are computed on (30).

    Raises:
        ValueError: a threshold out of range; the message names it and its value.
    """

    rsi_max: float = 60.0
    atr_min: float = 0.003
    gap_min: float = 0.05
    rsi_period: int = 14
    atr_period: int = 14
    bar_seconds: int = 30

    def __post_init__(self) -> None:
        checks = {
            "rsi_max": 0 < self.rsi_max <= 100,
            "atr_min": 0 <= self.atr_min < 1,
            "gap_min": 0 < self.gap_min < 10,
            "rsi_period": isinstance(self.rsi_period, int) and self.rsi_period >= 1,
            "atr_period": isinstance(self.atr_period, int) and self.atr_period >= 1,
            "bar_seconds": isinstance(self.bar_seconds, int) and self.bar_seconds > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"entry rule setting {name} has an invalid value: {getattr(self, name)!r}")

    @classmethod
    def from_settings(cls, settings: Any) -> EntryRuleConfig:
        """Build from :class:`daytrading.config.Settings` (reads ``settings.entry``).

        Reads ``rsi_max``, ``atr_min``, ``gap_min``, ``bar_seconds`` and the periods
        (``rsi_period`` / ``atr_period``, or a single ``periods`` if that is what the
        settings carry). Accepts the ``entry`` group itself too.
        """
        entry = getattr(settings, "entry", settings)
        periods = getattr(entry, "periods", None)
        rsi_p = getattr(entry, "rsi_period", periods) or 14
        atr_p = getattr(entry, "atr_period", periods) or rsi_p
        return cls(
            rsi_max=float(entry.rsi_max), atr_min=float(entry.atr_min), gap_min=float(entry.gap_min),
            rsi_period=int(rsi_p), atr_period=int(atr_p), bar_seconds=int(getattr(entry, "bar_seconds", 30)),
        )


@dataclass(frozen=True)
class RuleDecision:
    """The outcome of :func:`evaluate`.

    Attributes:
        fired: True when a rule fired.
        rule: ``"standard"``, ``"gap_and_go"`` (standard wins when both fire) or ``None``.
        reason: one line saying which rule fired or what failed, with the numbers.
        compared: the values and thresholds compared (JSON-serialisable: numbers,
            strings, booleans, ``None``; fractions for ``atr_pct``/``gap_pct``): keys
            ``time, close, vwap, rsi, rsi_max, atr, atr_pct, atr_min, gap_pct, gap_min,
            bars_seen, ready, standard, gap_and_go``.
    """

    fired: bool
    rule: RuleName | None
    reason: str
    compared: dict[str, Any] = field(default_factory=dict)


def gap_pct(price: float, previous_close: float) -> float:
    """Gap of ``price`` over ``previous_close`` as a FRACTION: ``price / previous_close − 1``.

    Raises:
        ValueError: ``previous_close`` is not a positive finite number or ``price`` is
            not finite.
    """
    if not (isinstance(previous_close, int | float) and math.isfinite(previous_close) and previous_close > 0):
        raise ValueError(f"previous_close must be a positive number, got {previous_close!r}")
    if not (isinstance(price, int | float) and math.isfinite(price)):
        raise ValueError(f"price must be a finite number, got {price!r}")
    return price / previous_close - 1.0


def _num(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _standard_failures(close: float, vwap: float | None, rsi: float, atr_pct: float | None,
                       config: EntryRuleConfig) -> list[str]:
    fails = []
    if vwap is None:
        fails.append("no session VWAP yet")
    elif not close > vwap:
        fails.append(f"close {close:.4f} ≤ VWAP {vwap:.4f}")
    if not rsi < config.rsi_max:
        fails.append(f"RSI {rsi:.2f} ≥ {config.rsi_max:g}")
    if atr_pct is None:
        fails.append("no ATR")
    elif atr_pct < config.atr_min:
        fails.append(f"ATR {atr_pct:.3%} < {config.atr_min:.3%}")
    return fails


def _gap_failures(gap: float | None, rsi: float, config: EntryRuleConfig) -> list[str]:
    fails = []
    if gap is None:
        fails.append("no gap")
    elif gap < config.gap_min:
        fails.append(f"gap {gap:.2%} < {config.gap_min:.2%}")
    if not rsi < config.rsi_max:
        fails.append(f"RSI {rsi:.2f} ≥ {config.rsi_max:g}")
    return fails


def evaluate(snapshot: Snapshot | None, gap: float | None, config: EntryRuleConfig) -> RuleDecision:
    """Apply the entry rules to one symbol's latest snapshot.

    Args:
        snapshot: the symbol's latest :class:`Snapshot` (``None``: no bars yet).
        gap: today's pre-market gap over the previous close as a FRACTION (see
            :func:`gap_pct`), or ``None`` when unknown (gap-and-go cannot fire).
        config: thresholds.

    Returns:
        A :class:`RuleDecision`; never raises on missing values (they make a rule
        not fire, and the reason says which value was missing).
    """
    if snapshot is None:
        return RuleDecision(False, None, "no bars yet", {"ready": False})
    s = snapshot
    rsi, vwap, atr_pct, g = _num(s.rsi), _num(s.vwap), _num(s.atr_pct), _num(gap)
    compared: dict[str, Any] = {
        "time": s.time.isoformat(), "close": s.close, "vwap": vwap, "rsi": rsi,
        "rsi_max": config.rsi_max, "atr": _num(s.atr), "atr_pct": atr_pct, "atr_min": config.atr_min,
        "gap_pct": g, "gap_min": config.gap_min, "bars_seen": s.bars_seen, "ready": bool(s.ready),
    }
    if not s.ready or rsi is None:
        compared.update(standard=False, gap_and_go=False)
        need = max(config.rsi_period, config.atr_period)
        return RuleDecision(False, None, f"indicators warming up ({s.bars_seen}/{need} bars)", compared)

    std_fail = _standard_failures(s.close, vwap, rsi, atr_pct, config)
    gap_fail = _gap_failures(g, rsi, config)

    compared.update(standard=not std_fail, gap_and_go=not gap_fail)
    if not std_fail:
        return RuleDecision(True, "standard", f"standard: close {s.close:.4f} > VWAP {vwap:.4f}, "
                            f"RSI {rsi:.2f} < {config.rsi_max:g}, ATR {atr_pct:.3%} ≥ {config.atr_min:.3%}",
                            compared)
    if not gap_fail:
        return RuleDecision(True, "gap_and_go", f"gap_and_go: gap {g:.2%} ≥ {config.gap_min:.2%}, "
                            f"RSI {rsi:.2f} < {config.rsi_max:g}", compared)
    return RuleDecision(False, None, f"no rule: standard ({'; '.join(std_fail)}); gap_and_go "
                        f"({'; '.join(gap_fail)})", compared)
