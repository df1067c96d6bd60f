"""The append-only, hash-chained audit log: ``record``/``record_many`` to append, ``verify`` to check."""

from backend.audit.chain import GENESIS_HASH, event_hash, record, record_many  # noqa: F401
from backend.audit.verify import VerifyResult, verify  # noqa: F401
