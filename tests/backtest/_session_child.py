"""Child process of the cross-process determinism test: one short session, its fills as JSON.

``python -m tests.backtest._session_child DATA DATE SYMBOLS START END`` prints
``{"fingerprint", "fills", "executor_calls"}``. With ``DAYTRADING_TEST_SKEW=F`` the wall
clocks (``time.time``/``monotonic``/``perf_counter``) run F times fast, as on a machine F
times slower; ``DAYTRADING_TEST_PERTURB=N`` allocates N objects first, so ``id()`` values
(and the order of sets hashed by them) differ from another process's.
"""

from __future__ import annotations

import json
import os
import sys
import time


def _skew(factor: float) -> None:
    for name in ("time", "monotonic", "perf_counter"):
        real = getattr(time, name)
        base = real()
        setattr(time, name, lambda real=real, base=base: base + (real() - base) * factor)


def main(argv: list[str]) -> int:
    if os.environ.get("DAYTRADING_TEST_SKEW"):
        _skew(float(os.environ["DAYTRADING_TEST_SKEW"]))
    ballast = [[i] for i in range(int(os.environ.get("DAYTRADING_TEST_PERTURB", "0")))]
    from datetime import date, datetime

    from daytrading.backtest import loop as backtest_loop
    from daytrading.backtest import run_session
    from daytrading.clock import NY
    from daytrading.config import load_settings

    data, day, symbols, start, end = argv
    session = date.fromisoformat(day)
    loops = []
    new_loop = backtest_loop.new_loop
    backtest_loop.new_loop = lambda **kw: loops.append(new_loop(**kw)) or loops[-1]

    def at(hm: str) -> datetime:
        h, m = map(int, hm.split(":"))
        return datetime(session.year, session.month, session.day, h, m, tzinfo=NY)

    result = run_session(data, session, load_settings(env_file=None), seed=3, symbols=symbols.split(","),
                         start=at(start), end=at(end))
    print(json.dumps({"fingerprint": result.fingerprint, "fills": [f.key() for f in result.fills],
                      "executor_calls": dict(loops[0].executor_calls), "ballast": len(ballast)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
