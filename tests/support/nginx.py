"""Render nginx.conf.example into a temp prefix and run it as a foreground nginx for tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port, wait_for_port

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONF = REPO_ROOT / "nginx.conf.example"

# The substitution contract with nginx.conf.example: each literal must occur
# exactly once there (checked), and is replaced by 127.0.0.1:<port>.
GATEWAY_ADDR = "127.0.0.1:9000"
LLM_ADDR = "127.0.0.1:11434"
LISTEN_ADDR = "127.0.0.1:8080"


def nginx_binary() -> str:
    """Path of the nginx executable (NGINX_BIN overrides; Debian puts it in /usr/sbin)."""
    explicit = os.environ.get("NGINX_BIN")
    if explicit:
        return explicit
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise FileNotFoundError("nginx not found; install it or set NGINX_BIN")
    return found


MICROCACHE_MARK = "#mc "
MICROCACHE_PATH = "/var/cache/nginx/llmsec_decisions"


def microcache_substitutions(cache_dir: str = "llmsec_decisions") -> dict[str, str]:
    """Turn on the example's opt-in decision micro-cache, with its cache under the prefix."""
    return {MICROCACHE_MARK: "", MICROCACHE_PATH: cache_dir}


def render_config(
    template: str,
    *,
    gateway_port: int,
    llm_port: int,
    listen_port: int,
    extra_substitutions: Mapping[str, str] | None = None,
) -> str:
    """Apply the substitution contract to the config text.

    Counts are checked so that an edit to the example that renames or
    duplicates an address fails loudly here, instead of a test silently
    talking to a real service on port 11434 or 9000.
    """
    text = template
    for literal, port in (
        (GATEWAY_ADDR, gateway_port),
        (LLM_ADDR, llm_port),
        (LISTEN_ADDR, listen_port),
    ):
        count = text.count(literal)
        if count != 1:
            raise ValueError(f"expected {literal!r} exactly once in nginx config, found {count}")
        text = text.replace(literal, f"127.0.0.1:{port}")
    for old, new in (extra_substitutions or {}).items():
        if old not in text:
            raise ValueError(f"extra substitution target {old!r} not found in nginx config")
        text = text.replace(old, new)
    return text


@dataclass
class NginxInstance:
    """A running nginx started by running_nginx()."""

    prefix: Path
    conf_path: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def error_log_path(self) -> Path:
        return self.prefix / "logs" / "error.log"

    @property
    def access_log_path(self) -> Path:
        return self.prefix / "logs" / "access.log"

    def error_log_text(self) -> str:
        return _read(self.error_log_path)

    def access_log_text(self) -> str:
        return _read(self.access_log_path)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _global_directives(prefix: Path) -> str:
    """Main-context directives passed with -g (the example deliberately lacks them)."""
    directives = [
        # Foreground, so we own the master process and can signal/wait it.
        "daemon off;",
        f"pid {prefix / 'nginx.pid'};",
        f"error_log {prefix / 'logs' / 'error.log'} info;",
    ]
    if os.geteuid() == 0:
        # As root without `user`, workers drop to nobody, who cannot enter
        # pytest's 0700 tmp dirs to write request-body temp files. Run them
        # as the same user as the test instead (non-root: directive unneeded).
        directives.append("user root;")
    return " ".join(directives)


def _run_config_test(nginx: str, prefix: Path, conf_path: Path, globals_: str) -> None:
    result = subprocess.run(
        [nginx, "-t", "-q", "-p", f"{prefix}/", "-c", str(conf_path), "-g", globals_],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"nginx -t failed for {conf_path}:\n{result.stderr}{result.stdout}")


def _is_running(process: subprocess.Popen[bytes]) -> Callable[[], bool]:
    # A factory, not a lambda in the retry loop, so the check is bound to
    # this attempt's process rather than the loop variable.
    return lambda: process.poll() is None


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is not None:
        return
    # SIGQUIT = graceful: finish in-flight requests, close idle keepalives.
    process.send_signal(signal.SIGQUIT)
    try:
        process.wait(timeout=timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    # A stream still in flight (e.g. a test left one open while its event
    # loop is blocked here) would hold graceful shutdown; SIGTERM = fast stop.
    process.terminate()
    try:
        process.wait(timeout=timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    # Last resort: kill the whole process group we created, so orphaned
    # workers cannot keep the port bound after the master is gone.
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=timeout)


@contextmanager
def running_nginx(
    tmp_path: Path,
    gateway_port: int,
    llm_port: int,
    *,
    listen_port: int | None = None,
    extra_substitutions: Mapping[str, str] | None = None,
    template_path: Path = EXAMPLE_CONF,
    startup_timeout: float = 10.0,
    stop_timeout: float = 5.0,
) -> Iterator[NginxInstance]:
    """Run nginx from the example config, in the foreground, until the block exits.

    The prefix is tmp_path/"nginx"; relative paths in the config (logs/,
    *_temp) land there. With listen_port=None a free port is picked, and the
    start is retried with another port if someone else grabbed it meanwhile.
    """
    nginx = nginx_binary()
    prefix = tmp_path / "nginx"
    template = template_path.read_text()
    attempts = 1 if listen_port is not None else 3
    last_error: Exception | None = None
    for _ in range(attempts):
        port = listen_port if listen_port is not None else free_port()
        # Fresh prefix per attempt so logs only show the run that matters.
        if prefix.exists():
            shutil.rmtree(prefix)
        # nginx creates its *_temp dirs itself but not the log directory.
        (prefix / "logs").mkdir(parents=True)
        conf_path = prefix / "nginx.conf"
        conf_path.write_text(
            render_config(
                template,
                gateway_port=gateway_port,
                llm_port=llm_port,
                listen_port=port,
                extra_substitutions=extra_substitutions,
            )
        )
        globals_ = _global_directives(prefix)
        # Config errors are not worth retrying; fail with nginx's own message.
        _run_config_test(nginx, prefix, conf_path, globals_)
        stderr_path = prefix / "logs" / "stderr.log"
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                [nginx, "-p", f"{prefix}/", "-c", str(conf_path), "-g", globals_],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                # Own process group, so _stop() can reap workers as a unit.
                start_new_session=True,
            )
        try:
            wait_for_port(
                "127.0.0.1",
                port,
                startup_timeout,
                alive=_is_running(process),
            )
            # Port open but master gone = something else owns the port.
            if process.poll() is not None:
                raise RuntimeError("nginx exited right after start")
        except (RuntimeError, TimeoutError) as exc:
            _stop(process, stop_timeout)
            details = _read(stderr_path) + _read(prefix / "logs" / "error.log")
            last_error = RuntimeError(f"nginx did not start on port {port}: {exc}\n{details}")
            if "Address already in use" in details:
                continue
            raise last_error from exc
        instance = NginxInstance(prefix=prefix, conf_path=conf_path, port=port, process=process)
        try:
            yield instance
        finally:
            _stop(process, stop_timeout)
        return
    assert last_error is not None
    raise last_error
