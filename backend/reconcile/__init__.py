"""Reconciliation: the product and each broker agree on open orders and positions.

``reconcile_all`` (the scheduled job every five minutes, and
``python -m backend reconcile``) compares every connected account with its
venue and repairs drift, each repair audited as ``reconcile.<kind>``; see
``run`` for the flow and ``report`` for the kinds.  Imports are lazy so the
scheduler can import the job without loading vendor SDKs.
"""

from __future__ import annotations

from backend.reconcile.report import AccountReport, ReconcileReport, Repair  # noqa: F401


def __getattr__(name: str):
    if name in ("reconcile_all", "reconcile_account"):
        from backend.reconcile import run

        return getattr(run, name)
    raise AttributeError(name)
