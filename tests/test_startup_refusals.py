"""`serve` refuses to start (exit 2, one stderr line): readable keys, plaintext passwords, insecure cookie."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from aiohttp import web

from llmsec_aio.audit import audit_log
from llmsec_aio.cli import main
from tests.support.deployment import DEFAULT_USERS, Deployment


def key_mode(mode: int) -> Callable[[Deployment], str]:
    def apply(dep: Deployment) -> str:
        (dep.keys_dir / "b-ed25519.pem").chmod(mode)
        return "b-ed25519.pem"
    return apply


def plaintext_password(dep: Deployment) -> str:
    dep.users["agent1"]["hash"] = DEFAULT_USERS["agent1"][0]
    dep.write()
    return "users.agent1.hash"


def insecure_cookie(dep: Deployment) -> str:
    assert str(dep.settings["issuer"]).startswith("https://")
    dep.settings["cookie"] = {"secure": False}
    dep.write()
    return "cookie.secure"


# Each breaks one thing, and returns what the one line must name.
REFUSALS: dict[str, Callable[[Deployment], str]] = {
    "key-group-readable-0640": key_mode(0o640),
    "key-world-readable-0644": key_mode(0o644),
    "plaintext-password": plaintext_password,
    "cookie-not-secure-with-https-issuer": insecure_cookie,
}


@pytest.fixture
def never_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    # If a refusal were missing, `serve` would listen and block the suite forever; fail instead.
    async def start(self: web.TCPSite) -> None:
        raise AssertionError("serve got as far as listening: the configuration was not refused")

    monkeypatch.setattr(web.TCPSite, "start", start)


@pytest.fixture
def restore_audit_logger() -> Iterator[None]:
    # main() configures the audit logger for a process's lifetime (its own handler, no
    # propagation); put it back so later tests see the logging they expect.
    handlers, propagate, level = list(audit_log.handlers), audit_log.propagate, audit_log.level
    yield
    audit_log.handlers[:] = handlers
    audit_log.propagate, audit_log.level = propagate, level


@pytest.mark.usefixtures("never_listens", "restore_audit_logger")
@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_serve_refuses_with_exit_2_and_one_line(deployment: Deployment, refusal: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    named = REFUSALS[refusal](deployment)
    code = main(["--config", str(deployment.config_path), "serve", "--port", "0"])
    out, err = capsys.readouterr()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("llmsec-aio: configuration error: ") and named in err, err
    assert all(pw not in err for pw, _ in DEFAULT_USERS.values())  # never echoes a password
    assert out == ""


def test_the_unbroken_deployment_is_not_refused(deployment: Deployment, never_listens: None,
                                                restore_audit_logger: None) -> None:
    # Guard: the refusals above come from what each case breaks, not from the fixture itself.
    with pytest.raises(AssertionError, match="got as far as listening"):
        main(["--config", str(deployment.config_path), "serve", "--port", "0"])


@pytest.mark.e2e
@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_the_real_process_prints_one_line_and_exits_2(deployment: Deployment, refusal: str) -> None:
    # The real process, with its real logging on stderr: still exactly one line.
    named = REFUSALS[refusal](deployment)
    result = subprocess.run(
        [sys.executable, "-m", "llmsec_aio", "--config", str(deployment.config_path), "serve",
         "--host", "127.0.0.1", "--port", "0"],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2, result
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("llmsec-aio: configuration error: ") and named in result.stderr
    assert result.stdout == ""

