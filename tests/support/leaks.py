"""A scanner for secrets in logs: test passwords, bcrypt hashes, PEM private keys and JWTs."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.support.deployment import DEFAULT_USERS

# Every password the suite logs in with or sets, written out so a new one is a visible edit:
# the DEFAULT_USERS ones plus each "-pw" string the tests use (the wrong ones too: a mistyped
# password is nearly the real one, so it must not be logged either).
TEST_PASSWORDS: tuple[str, ...] = (
    "admin1-pw", "agent1-pw", "agi1-pw", "fast1-pw", "late-pw", "long-pw", "mon1-pw",
    "newbie-pw", "web1-pw", "wrong-pw",
)
assert {pw for pw, _ in DEFAULT_USERS.values()} <= set(TEST_PASSWORDS), "add the new default password"

# A bcrypt hash: "$2b$", the cost, "$", then at least the 22-character salt. The bare "$2b$..."
# in the product's "expected a bcrypt hash ($2b$...)" message is not a hash and must not count.
BCRYPT_HASH = re.compile(r"\$2[aby]\$\d{2}\$[./A-Za-z0-9]{22}")
# A PEM private key block of any type ("BEGIN PRIVATE KEY", "BEGIN RSA PRIVATE KEY", ...).
PRIVATE_KEY = re.compile(r"PRIVATE KEY")
# A JWS in compact form: three base64url segments, the header's JSON making the first start
# with "eyJ". The signature may be empty (alg "none" tokens are tokens too).
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")

CONTEXT = 40


@dataclass(frozen=True)
class Finding:
    where: str  # a log file, or "log record <logger name>"
    kind: str  # "password", "bcrypt hash", "private key" or "JWT"
    excerpt: str  # the text around it, with the secret itself masked

    def __str__(self) -> str:
        return f"{self.where}: {self.kind}: ...{self.excerpt}..."


class LeakScanner:
    def __init__(self, passwords: Iterable[str] = TEST_PASSWORDS) -> None:
        words = sorted({p for p in passwords if p}, key=len, reverse=True)
        self.patterns: list[tuple[str, re.Pattern[str]]] = [
            ("bcrypt hash", BCRYPT_HASH), ("private key", PRIVATE_KEY), ("JWT", JWT)]
        if words:
            self.patterns.insert(0, ("password", re.compile("|".join(map(re.escape, words)))))

    def scan_text(self, text: str, where: str) -> list[Finding]:
        findings = []
        for kind, pattern in self.patterns:
            for match in pattern.finditer(text):
                before = text[max(0, match.start() - CONTEXT):match.start()]
                after = text[match.end():match.end() + CONTEXT]
                findings.append(Finding(where, kind, f"{before}<{kind}>{after}"))
        return findings

    def scan_files(self, root: Path, pattern: str = "*.log") -> list[Finding]:
        findings: list[Finding] = []
        for path in sorted(root.rglob(pattern)):
            if path.is_file():
                findings += self.scan_text(path.read_text(errors="replace"), str(path))
        return findings


class LeakCapture(logging.Handler):
    """Scans every record it handles, formatted with its exception text, and keeps the findings
    (not the records: a whole test run logs far too much to hold)."""

    def __init__(self, scanner: LeakScanner, max_findings: int = 200) -> None:
        super().__init__(level=logging.NOTSET)
        self.scanner = scanner
        self.max_findings = max_findings
        self.findings: list[Finding] = []
        self.records = 0
        self._last: logging.LogRecord | None = None
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        # Attached to the root logger and to non-propagating loggers: a record that propagates
        # from one to the other arrives twice in a row, and is scanned once.
        if record is self._last:
            return
        self._last = record
        self.records += 1
        try:
            text = self.format(record)
        except Exception:  # a broken log call is the caller's bug, not a leak; report it as such
            text = f"{record.msg!r} {record.args!r}"
        if len(self.findings) < self.max_findings:
            # pytest names the running test (and phase) in this variable: say who logged it,
            # since the session check only fails at the very end of the run.
            running = os.environ.get("PYTEST_CURRENT_TEST")
            where = f"log record {record.name}" + (f" during {running}" if running else "")
            self.findings += self.scanner.scan_text(text, where)
