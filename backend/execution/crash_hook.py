"""TEST-ONLY crash hook: kill the process right after a named step.

``DTE_CRASH_AFTER=<step>`` makes ``crash_point(<step>)`` end the process
with ``os._exit(137)`` (what a SIGKILL looks like to a supervisor): no
``finally``, no rollback, no flush.  The crash-recovery tests run a worker
subprocess with it set, then prove a second worker finishes the job with
exactly one order per follower and leg at the venue.

Steps: ``fanout_committed`` (decisions and order intents committed, nothing
sent), ``broker_acked`` (the venue accepted the orders, the acks are not yet
recorded).  Never set this variable in production.
"""

from __future__ import annotations

import os

ENV_VAR = "DTE_CRASH_AFTER"


def crash_point(step: str) -> None:
    if os.environ.get(ENV_VAR) == step:
        os._exit(137)
