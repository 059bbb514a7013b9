"""Revocations: the in-memory list every /validate consults, and its records (pure).

A jti is refused until its `exp`; a subject revocation refuses every token issued to that
subject up to the moment of revocation, and is kept as long as such a token can be alive.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from .tokens import Claims


@dataclass(frozen=True)
class Revocation:
    """One revocation record, as stored in the file or in Redis and sent between instances."""

    kind: str  # "jti" or "sub"
    value: str
    at: float  # when it was revoked
    until: float  # when it can be forgotten: the token's exp, or at + longest TTL + leeway

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "value": self.value, "at": self.at, "until": self.until},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Revocation:
        """Parse a record; raise ValueError for anything that is not one."""
        data: Any = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        kind, value, at, until = data.get("kind"), data.get("value"), data.get("at"), data.get("until")
        if kind not in ("jti", "sub") or not isinstance(value, str) or not value:
            raise ValueError("bad kind or value")
        times = [t for t in (at, until)
                 if isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t)]
        if len(times) != 2:
            raise ValueError("bad times")
        return cls(kind, value, float(times[0]), float(times[1]))


class RevocationList:
    """What this instance knows is revoked. Lookups are two dict probes per validation."""

    def __init__(self) -> None:
        self.jtis: dict[str, float] = {}  # jti -> until
        self.subjects: dict[str, tuple[float, float]] = {}  # sub -> (revoked at, until)

    def __len__(self) -> int:
        return len(self.jtis) + len(self.subjects)

    def add(self, record: Revocation) -> None:
        if record.kind == "jti":
            self.jtis[record.value] = max(record.until, self.jtis.get(record.value, 0.0))
        else:
            at, until = self.subjects.get(record.value, (0.0, 0.0))
            self.subjects[record.value] = (max(at, record.at), max(until, record.until))

    def is_revoked(self, claims: Claims) -> bool:
        if claims.jti in self.jtis:
            return True
        revoked = self.subjects.get(claims.sub)
        # Tokens issued up to the second of the revocation are refused (iat has whole seconds).
        return revoked is not None and claims.iat <= revoked[0]

    def prune(self, now: float) -> None:
        """Forget revocations whose tokens have all expired."""
        self.jtis = {j: u for j, u in self.jtis.items() if u > now}
        self.subjects = {s: v for s, v in self.subjects.items() if v[1] > now}

    def records(self) -> list[Revocation]:
        out = [Revocation("jti", j, 0.0, u) for j, u in self.jtis.items()]
        out += [Revocation("sub", s, at, u) for s, (at, u) in self.subjects.items()]
        return out
