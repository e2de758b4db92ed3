"""Entry rules on constructed snapshots and on real recorded sessions."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime

import numpy as np
import pytest
import ta

from daytrading.clock import NY, calendar
from daytrading.config import Settings
from daytrading.signals.indicators import IndicatorSet, Snapshot
from daytrading.signals.rules import EntryRuleConfig, evaluate, gap_pct
from tests.signals._data import day, load_minute, to_bars

CFG = EntryRuleConfig()
T = datetime(2021, 1, 4, 10, 0, tzinfo=NY)


def snap(**kw) -> Snapshot:
    base = dict(symbol="X", time=T, close=10.10, vwap=10.0, premarket_vwap=None, rsi=55.0, atr=0.05,
                atr_pct=0.05 / 10.10, bars_seen=40, ready=True, phase="regular")
    return Snapshot(**{**base, **kw})


def test_standard_fires_when_all_three_hold():
    d = evaluate(snap(), None, CFG)
    assert d.fired and d.rule == "standard"
    assert d.reason.startswith("standard: close 10.1000 > VWAP 10.0000")
    assert d.compared["standard"] is True and d.compared["gap_and_go"] is False
    json.dumps(d.compared, allow_nan=False)


@pytest.mark.parametrize(("change", "why"), [
    ({"close": 9.99}, "close 9.9900 ≤ VWAP 10.0000"),
    ({"close": 10.0}, "close 10.0000 ≤ VWAP"),          # not strictly above
    ({"rsi": 60.0}, "RSI 60.00 ≥ 60"),                  # RSI must be strictly below
    ({"atr_pct": 0.0029}, "ATR 0.290% < 0.300%"),
    ({"vwap": None, "phase": "pre"}, "no session VWAP yet"),
])
def test_standard_does_not_fire_and_says_why(change, why):
    d = evaluate(snap(**change), None, CFG)
    assert not d.fired and d.rule is None
    assert why in d.reason and "gap_and_go (no gap" in d.reason
    json.dumps(d.compared, allow_nan=False)


def test_atr_and_gap_thresholds_are_inclusive():
    assert evaluate(snap(atr_pct=0.003), None, CFG).rule == "standard"
    assert evaluate(snap(close=9.0), 0.05, CFG).rule == "gap_and_go"
    assert not evaluate(snap(close=9.0), 0.0499, CFG).fired


def test_gap_and_go_bypasses_vwap_but_not_rsi():
    d = evaluate(snap(close=9.5, vwap=10.0, atr_pct=0.001), 0.08, CFG)
    assert d.fired and d.rule == "gap_and_go"
    assert d.compared["gap_pct"] == 0.08 and d.compared["gap_min"] == 0.05
    assert "gap 8.00% ≥ 5.00%" in d.reason
    # also fires before the open (no VWAP at all); whether to enter then is a gate's call
    assert evaluate(snap(vwap=None, phase="pre"), 0.08, CFG).rule == "gap_and_go"
    d = evaluate(snap(close=9.5, rsi=61.0), 0.08, CFG)
    assert not d.fired and "RSI 61.00 ≥ 60" in d.reason
    # both hold: reported as standard, both flagged in compared
    d = evaluate(snap(), 0.08, CFG)
    assert d.rule == "standard" and d.compared["gap_and_go"] is True


def test_not_ready_or_missing_never_fires():
    d = evaluate(snap(rsi=None, atr=None, atr_pct=None, ready=False, bars_seen=5), 0.2, CFG)
    assert not d.fired and d.reason == "indicators warming up (5/14 bars)"
    assert evaluate(None, 0.2, CFG).reason == "no bars yet"
    d = evaluate(snap(rsi=float("nan")), 0.2, CFG)  # a NaN is treated as missing
    assert not d.fired and d.compared["rsi"] is None
    json.dumps(d.compared, allow_nan=False)


def test_config_from_settings_and_validation():
    s = Settings()
    assert EntryRuleConfig.from_settings(s) == EntryRuleConfig()
    custom = s.model_copy(update={"entry": s.entry.model_copy(update={"rsi_max": 55.0, "atr_min": 0.004,
                                                                       "gap_min": 0.07, "rsi_period": 9})})
    c = EntryRuleConfig.from_settings(custom)
    assert (c.rsi_max, c.atr_min, c.gap_min, c.rsi_period, c.atr_period, c.bar_seconds) == (55.0, 0.004, 0.07, 9, 14, 30)
    assert not evaluate(snap(rsi=56.0), None, c).fired
    with pytest.raises(ValueError, match="rsi_max has an invalid value: 0"):
        EntryRuleConfig(rsi_max=0)
    with pytest.raises(ValueError, match="atr_min"):
        replace(CFG, atr_min=-0.1)


def test_gap_pct():
    assert gap_pct(460.17, 408.09) == pytest.approx(0.12762, abs=1e-5)
    assert gap_pct(95.0, 100.0) == pytest.approx(-0.05)
    with pytest.raises(ValueError, match="previous_close must be a positive number, got 0"):
        gap_pct(10.0, 0)
    with pytest.raises(ValueError, match="price must be a finite number"):
        gap_pct(float("nan"), 10.0)


def replay_day(df, d: date, cfg: EntryRuleConfig = CFG):
    """Warm on the previous session, replay ``d``: gap from the latest pre-market
    price, then the opening price (like the day-trader). Returns (snaps, decisions, gap)."""
    cal = calendar()
    prev = cal.previous_session(d)
    p = day(df, prev)
    previous_close = p[p.index < cal.session(prev).close]["close"].iloc[-1]
    ind = IndicatorSet("X")
    ind.warm(to_bars(p))
    opening = cal.session(d).open
    gap, snaps, decisions = None, [], []
    for b in to_bars(day(df, d)):
        s = ind.update(b)
        if b.time < opening:
            gap = gap_pct(b.close, previous_close)
        elif b.time == opening:
            gap = gap_pct(b.open, previous_close)
        snaps.append(s)
        decisions.append(evaluate(s, gap, cfg))
    return snaps, decisions, gap


def test_real_gap_day_fires_gap_and_go_and_a_quiet_day_does_not(minute_data_dir):
    tsla = load_minute(minute_data_dir, "TSLA")
    # TSLA 2020-11-17: opened 460.17 over the 408.09 close (+12.8 %, S&P inclusion news)
    snaps, decisions, gap = replay_day(tsla, date(2020, 11, 17))
    assert gap == pytest.approx(460.17 / 408.09 - 1)
    regular = [(s, d) for s, d in zip(snaps, decisions, strict=True) if s.phase == "regular"]
    gap_go = [s for s, d in regular if d.rule == "gap_and_go"]
    assert gap_go and gap_go[0].time == datetime(2020, 11, 17, 9, 30, tzinfo=NY)
    assert all(s.rsi < 60 for s in gap_go)
    assert all(not d.fired for s, d in regular if s.rsi >= 60)
    # TSLA 2020-11-18: +1.5 % open, no gap-and-go at all, but the standard rule fires
    snaps, decisions, gap = replay_day(tsla, date(2020, 11, 18))
    assert 0 < gap < 0.05
    assert not any(d.rule == "gap_and_go" for d in decisions)
    assert any(d.rule == "standard" for s, d in zip(snaps, decisions, strict=True) if s.phase == "regular")


# GOOG on the 2020-12-24 half day never moves 0.3 % of its price per bar: never fires.
@pytest.mark.parametrize(("symbol", "d", "fires"), [("NIO", date(2020, 11, 17), True),
                                                    ("AMD", date(2020, 12, 1), True),
                                                    ("GOOG", date(2020, 12, 24), False)])
def test_standard_rule_on_a_real_day_matches_a_vectorised_ta_evaluation(minute_data_dir, symbol, d, fires):
    df = load_minute(minute_data_dir, symbol)
    snaps, decisions, _ = replay_day(df, d, replace(CFG, gap_min=9.0))  # gap-and-go out of the way
    prev = calendar().previous_session(d)
    both = df[(df.index.date == prev) | (df.index.date == d)]
    rsi = ta.momentum.RSIIndicator(both["close"], 14).rsi()
    atr = ta.volatility.AverageTrueRange(both["high"], both["low"], both["close"], 14).average_true_range()
    s = calendar().session(d)
    today = both[both.index.date == d]
    reg = today[(today.index >= s.open) & (today.index < s.close)]
    tp_v = (reg["high"] + reg["low"] + reg["close"]) / 3 * reg["volume"]
    vwap = tp_v.cumsum() / reg["volume"].cumsum()
    expected = ((reg["close"] > vwap) & (rsi[reg.index] < 60) & (atr[reg.index] / reg["close"] >= 0.003)).to_numpy()
    got = np.array([dd.rule == "standard" for sn, dd in zip(snaps, decisions, strict=True) if sn.phase == "regular"])
    assert len(got) == len(expected) > 100
    if fires:
        assert 0 < expected.sum() < len(expected)  # the day has both outcomes
    else:
        assert expected.sum() == 0 and (atr[reg.index] / reg["close"] < 0.003).all()
    assert (got == expected).all()
