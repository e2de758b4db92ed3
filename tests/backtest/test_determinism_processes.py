"""The same session in two processes gives the same fills: nothing depends on the process.

A sweep runs cells on Dask workers, so a backtest must not depend on what differs between
two processes: str hashing (``PYTHONHASHSEED``: the order of sets of symbols), memory
addresses (``id()``: the order of ib_async's ticker set), or the wall clock (a loaded
machine). The second child changes all three at once: another hash seed, a shifted heap,
and wall clocks that run 1000 times fast, as on a very slow machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import PROJECT_ROOT

DAY = "2020-11-17"
SYMBOLS = "TSLA,LI"  # TSLA stops out at 09:30:36, LI at 09:33:33
WINDOW = ("9:29", "9:34")


def _start(minute_data_dir, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.backtest._session_child", str(minute_data_dir), DAY, SYMBOLS, *WINDOW],
        cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_two_processes_with_other_hash_seeds_heaps_and_wall_clocks_give_the_same_fills(minute_data_dir):
    plain = _start(minute_data_dir, PYTHONHASHSEED="1")
    other = _start(minute_data_dir, PYTHONHASHSEED="2", DAYTRADING_TEST_PERTURB="20000", DAYTRADING_TEST_SKEW="1000")
    a, b = _result(plain), _result(other)
    assert b["ballast"] == 20000
    assert len(a["fills"]) == 4 and {f.split("|")[1] for f in a["fills"]} == {"TSLA", "LI"}
    assert a["fills"] == b["fills"]
    assert a["fingerprint"] == b["fingerprint"]
    # a thread-pool call would let looptime move virtual time with the wall clock
    assert a["executor_calls"] == b["executor_calls"] == {}
