"""The run command's process handling (scripts/procs.sh), driven for real in bash.

`scripts/run.sh` starts web, worker and scheduler with ``start_group`` and waits
with ``wait_groups``. Ctrl-C must stop every process *and its children* (Reflex
starts grandchildren that ignore the parent's death); one process dying must
stop the others, so a half-running product never lingers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WRAPPER = """
source "{procs}"
start_group bash -c 'sleep 300 & sleep 300 & wait'
start_group bash -c 'trap "" TERM; sleep 300 & wait'
start_group bash -c '{third}'
printf '%s\\n' "${{PROC_GROUPS[@]}}" > "{pids}"
wait_groups
"""


def _start(tmp_path: Path, third: str = "sleep 300") -> tuple[subprocess.Popen, list[int]]:
    pids = tmp_path / "pgids"
    script = WRAPPER.format(procs=ROOT / "scripts" / "procs.sh", pids=pids, third=third)
    proc = subprocess.Popen(["bash", "-c", script], env={**os.environ, "STOP_GRACE_SECONDS": "1"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (pids.exists() and len(pids.read_text().split()) == 3):
        time.sleep(0.05)
    return proc, [int(p) for p in pids.read_text().split()]


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_all_gone(pgids: list[int], seconds: float = 10) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(g) for g in pgids):
        time.sleep(0.05)
    return [g for g in pgids if _alive(g)]


def test_ctrl_c_stops_every_process_group_including_children_that_ignore_term(tmp_path):
    proc, pgids = _start(tmp_path)
    assert all(_alive(g) for g in pgids)
    time.sleep(0.3)  # let the children start their own children
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 130
    assert _wait_all_gone(pgids) == []


def test_one_process_exiting_stops_the_others(tmp_path):
    proc, pgids = _start(tmp_path, third="sleep 0.5; exit 3")
    proc.wait(timeout=15)
    assert _wait_all_gone(pgids) == []
