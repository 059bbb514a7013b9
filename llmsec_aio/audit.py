"""Security events as one JSON line each, on their own logger (`llmsec_aio.audit`) so they can
be routed apart from the operational log. Fields name people and keys, never secrets."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

audit_log = logging.getLogger("llmsec_aio.audit")


def event(kind: str, /, **fields: Any) -> None:
    """Log one event; values are truncated so an attacker-chosen username cannot flood a line."""
    if not audit_log.isEnabledFor(logging.INFO):
        return
    record = {"time": round(time.time(), 3), "event": kind}
    for key, value in fields.items():
        record[key] = value[:200] if isinstance(value, str) else value
    audit_log.info(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
