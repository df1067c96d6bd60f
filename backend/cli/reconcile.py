"""``python -m backend reconcile [--account ID]``: compare with the brokers, repair drift, print the report.

Exit code 0 when every account was reconciled, 1 when one failed (its
status and message are recorded on the account), 2 for an unknown account.
"""

from __future__ import annotations

import argparse


def register(groups: argparse._SubParsersAction) -> None:
    parser = groups.add_parser("reconcile", help="compare open orders and positions with the brokers and repair drift")
    parser.add_argument("--account", type=int, default=None, metavar="ID", help="only this broker account")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from backend.config import get_settings
    from backend.db.session import get_engine
    from backend.errors import NotFound
    from backend.logsetup import configure_logging
    from backend.reconcile.job import run_blocking
    from backend.reconcile.run import reconcile_all

    configure_logging(get_settings())
    try:
        report = run_blocking(reconcile_all(get_engine(), account_id=args.account))
    except NotFound as exc:
        print(exc.message)
        return 2
    print(report)
    return 1 if report.failed else 0
