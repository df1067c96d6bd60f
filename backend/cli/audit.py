"""``python -m backend audit verify``: check the audit chain; exit 0 when intact, 1 when broken."""

from __future__ import annotations

import argparse


def register(groups: argparse._SubParsersAction) -> None:
    audit = groups.add_parser("audit", help="the hash-chained audit log")
    commands = audit.add_subparsers(dest="command", metavar="<command>", required=True)
    verify = commands.add_parser("verify", help="walk the whole chain and report the first problem")
    verify.set_defaults(handler=run_verify)


def run_verify(_args: argparse.Namespace) -> int:
    from backend.audit import verify
    from backend.db.session import get_engine

    result = verify(get_engine())
    if result.ok:
        print(f"audit chain OK: {result.checked} events")
        if result.head_hash:
            print(f"head hash: {result.head_hash}")
        return 0
    print(f"audit chain BROKEN at seq {result.first_bad_seq}: {result.problem}")
    return 1
