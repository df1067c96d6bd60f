"""What a reconciliation run found and did, as plain data (the CLI prints it, jobs log it, tests read it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Repair kinds; each is audited as ``reconcile.<kind>``.
MISSED_FILL = "missed_fill"            # the venue filled (part of) an order and the product had not booked it
ORDER_STATUS = "order_status"          # the venue ended / acknowledged an order without a new fill
ORDER_MISSING = "order_missing"        # the venue no longer has an order the product thought working
POSITION_CLOSED = "position_closed"    # the product held a position the venue no longer holds
POSITION_ADJUSTED = "position_adjusted"  # both hold it, in different sizes
UNKNOWN_POSITION = "unknown_position"  # the venue holds a position the product never opened (recorded, flagged)

KINDS = (MISSED_FILL, ORDER_STATUS, ORDER_MISSING, POSITION_CLOSED, POSITION_ADJUSTED, UNKNOWN_POSITION)


@dataclass
class Repair:
    kind: str
    account_id: int
    subject: str       # a client order id, or a symbol
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class AccountReport:
    account_id: int
    label: str
    broker: str
    repairs: list[Repair] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # what could not be checked this time, and why
    error: str | None = None
    orders_checked: int = 0
    positions_checked: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ReconcileReport:
    started_at: datetime
    finished_at: datetime | None = None
    accounts: list[AccountReport] = field(default_factory=list)

    @property
    def repairs(self) -> list[Repair]:
        return [r for a in self.accounts for r in a.repairs]

    @property
    def failed(self) -> list[AccountReport]:
        return [a for a in self.accounts if not a.ok]

    def lines(self) -> list[str]:
        out = [f"Reconciled {len(self.accounts)} account(s): {len(self.repairs)} repair(s), "
               f"{len(self.failed)} failure(s)."]
        for a in self.accounts:
            head = f"- #{a.account_id} {a.label} ({a.broker}): "
            if not a.ok:
                out.append(head + f"FAILED: {a.error}")
                continue
            out.append(head + f"{a.orders_checked} order(s) and {a.positions_checked} position(s) checked, "
                              f"{len(a.repairs)} repair(s)")
            out += [f"    {r.kind}: {r.subject}: {r.message}" for r in a.repairs]
            out += [f"    note: {n}" for n in a.notes]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())
