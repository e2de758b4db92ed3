"""The session report says loudly when the replay was a synthetic session."""

from __future__ import annotations

from datetime import date, datetime

from daytrading.clock import NY, ManualClock
from daytrading.coordination import Coordinator
from daytrading.db import make_engine, upgrade
from daytrading.ops.report import session_report


def test_synthetic_session_is_said_loudly(tmp_path):
    db = tmp_path / "t.db"
    upgrade(db)
    coord = Coordinator(make_engine(db), "test", ManualClock(datetime(2020, 11, 17, 16, 30, tzinfo=NY)))
    gateway = {"synthetic": True, "shorts": [], "positions": {}, "executions": []}
    rep = session_report(coord, date(2020, 11, 17), gateway_report=gateway, bars=None, out_dir=tmp_path)
    assert rep.text.startswith("*** SYNTHETIC SESSION")
    assert rep.text.rstrip().endswith("NOT recorded market data ***")
    recorded = session_report(coord, date(2020, 11, 17), gateway_report={**gateway, "synthetic": False},
                              bars=None, out_dir=tmp_path)
    assert "SYNTHETIC" not in recorded.text
