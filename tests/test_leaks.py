"""The leak scanner itself: it must catch planted secrets, in log records and in *.log files."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.support.deployment import DEFAULT_USERS, hash_pw, pem
from tests.support.leaks import TEST_PASSWORDS, LeakCapture, LeakScanner

SCANNER = LeakScanner(TEST_PASSWORDS)
# Built at run time so this file itself holds no token-shaped or key-shaped literal.
JWT_SAMPLE = ".".join(["eyJhbGciOiJFZERTQSJ9", "eyJzdWIiOiJhZ2VudDEifQ", "c2lnbmF0dXJl"])
UNSIGNED_JWT = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbjEifQ."


@pytest.fixture
def private_logger() -> Iterator[tuple[logging.Logger, LeakCapture]]:
    # Its own capture and no propagation: the planted secrets must not reach the session-wide
    # leak check, which would (rightly) fail the run.
    logger = logging.getLogger("tests.leaks.planted")
    capture = LeakCapture(LeakScanner(TEST_PASSWORDS))
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(capture)
    try:
        yield logger, capture
    finally:
        logger.removeHandler(capture)
        logger.propagate = True


@pytest.mark.parametrize("password", sorted({pw for pw, _ in DEFAULT_USERS.values()} | set(TEST_PASSWORDS)))
def test_every_test_password_is_caught(password: str) -> None:
    findings = SCANNER.scan_text(f"login of someone with {password} failed", "x")
    assert [f.kind for f in findings] == ["password"]


@pytest.mark.parametrize("secret, kind", [
    (hash_pw("agent1-pw")[:30], "bcrypt hash"),  # even a truncated hash
    ("$2a$12$abcdefghijklmnopqrstuv", "bcrypt hash"),
    ("-----BEGIN " + "PRIVATE KEY-----", "private key"),  # built: no tracked file looks like a key
    ("-----BEGIN RSA " + "PRIVATE KEY-----", "private key"),
    (JWT_SAMPLE, "JWT"),
    (UNSIGNED_JWT, "JWT"),
])
def test_planted_secrets_are_caught(secret: str, kind: str) -> None:
    findings = SCANNER.scan_text(f"prefix {secret} suffix", "planted")
    assert kind in [f.kind for f in findings]
    # The report shows where, never the secret itself.
    assert all(secret not in str(f) for f in findings)


def test_a_real_key_and_a_real_hash_are_caught() -> None:
    key = pem(ed25519.Ed25519PrivateKey.generate()).decode()
    kinds = {f.kind for f in SCANNER.scan_text(key + hash_pw("web1-pw"), "planted")}
    assert kinds == {"private key", "bcrypt hash"}


@pytest.mark.parametrize("text", [
    "validate: 401 (missing)",
    "credentials.yaml:3: users.x.hash: expected a bcrypt hash ($2b$...), found a value that is not a hash",
    "expected a PEM private key (Ed25519 or RSA)",
    "login of agent1 from 10.0.0.1 failed",
    "jti -Q5x3EJybU8njEGLDVnd4w kid QIz1l_k22Z6MDcOkuIR1e8hoTNqULfyfFexTi5f8Cgk",
    "eyJ alone, or eyJabc.def without a third segment",
])
def test_ordinary_log_lines_are_not_findings(text: str) -> None:
    assert SCANNER.scan_text(text, "x") == []


def test_records_are_scanned_with_their_exception_text(
        private_logger: tuple[logging.Logger, LeakCapture]) -> None:
    logger, capture = private_logger
    logger.info("user %s logged in", "agent1")
    try:
        raise ValueError(f"bad token {JWT_SAMPLE}")
    except ValueError:
        logger.exception("validate failed")  # the secret is only in the traceback
    logger.debug("password was %s", "web1-pw")  # DEBUG records are scanned too
    assert capture.records == 3
    assert sorted(f.kind for f in capture.findings) == ["JWT", "password"]


def test_a_record_arriving_twice_is_scanned_once() -> None:
    capture = LeakCapture(LeakScanner(TEST_PASSWORDS))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "pw %s", ("admin1-pw",), None)
    capture.handle(record)
    capture.handle(record)  # as when attached to a logger and to the root it propagates to
    assert capture.records == 1 and len(capture.findings) == 1


def test_log_files_are_scanned_recursively() -> None:
    # A private temp folder, not pytest's basetemp: the session check scans that one.
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "nginx" / "logs").mkdir(parents=True)
        (root / "nginx" / "logs" / "error.log").write_text(f"GET /?t={JWT_SAMPLE}\n")
        (root / "gateway.log").write_text("all quiet\n")
        (root / "notes.txt").write_text("agent1-pw")  # not a *.log file: not scanned
        findings = SCANNER.scan_files(root)
    assert [(Path(f.where).name, f.kind) for f in findings] == [("error.log", "JWT")]


def test_the_session_check_is_installed(no_secrets_in_logs: LeakCapture) -> None:
    assert no_secrets_in_logs in logging.getLogger().handlers
    assert no_secrets_in_logs in logging.getLogger("llmsec_aio.audit").handlers
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
