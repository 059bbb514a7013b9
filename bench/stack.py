"""Processes and files of a bench run: deployments, pre-minted tokens, gateways, the Floor A app."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from llmsec_aio.config import load_config
from llmsec_aio.keys import load_keyring
from llmsec_aio.tokens import TokenService
from tests.support.deployment import Deployment, make_deployment
from tests.support.gateway import GatewayProcess, start_gateway, stop_gateway
from tests.support.net import free_port, wait_for_port

from .wrk import BenchError

AGENT = "agent1"
AGENT_PASSWORD = "agent1-pw"
AGENT_ROLE = "agent_reasoning"
TOKEN_TTL = 3600  # minted tokens outlive the whole run; verification does not bind exp to the role TTL
LOW_COST = 4
LOGIN_COST = 12
CACHE_ENTRIES = 200_000  # >= the 100,000 tokens of the memory figure
RSA_BITS = 2048  # what the test-suite uses; see bench/README.md
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Keys:
    rsa: rsa.RSAPrivateKey
    ed: ed25519.Ed25519PrivateKey

    @classmethod
    def generate(cls) -> Keys:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS),
                   ed25519.Ed25519PrivateKey.generate())


def base_settings(*, cost: int, metrics_port: int | None = None,
                  verified_cache_ttl: int | None = None) -> dict[str, Any]:
    """config.yaml of a bench gateway: quiet (no file watching), a cache big enough for every figure."""
    credentials: dict[str, Any] = {"file": "credentials.yaml", "bcrypt_cost": cost}
    if verified_cache_ttl is not None:
        credentials["verified_cache_ttl"] = verified_cache_ttl
    settings: dict[str, Any] = {
        "server": {"watch_interval": 0},
        "cache": {"max_entries": CACHE_ENTRIES},
        "credentials": credentials,
    }
    if metrics_port is not None:
        settings["metrics"] = {"port": metrics_port}
    return settings


def deploy(root: Path, keys: Keys, *, cost: int = LOW_COST, metrics_port: int | None = None,
           verified_cache_ttl: int | None = None) -> Deployment:
    """A deployment whose agent user is hashed at `cost` (the other users keep the lowest cost)."""
    root.mkdir(parents=True, exist_ok=True)
    dep = make_deployment(root, keys.rsa, keys.ed, **base_settings(
        cost=cost, metrics_port=metrics_port, verified_cache_ttl=verified_cache_ttl))
    if cost != LOW_COST:
        dep.add_user(AGENT, AGENT_PASSWORD, AGENT_ROLE, cost=cost)
    return dep


def config_check(dep: Deployment) -> tuple[bool, str]:
    """`llmsec-aio config check` on the deployment: does this gateway accept the config?"""
    result = subprocess.run(
        [sys.executable, "-m", "llmsec_aio", "--config", str(dep.config_path), "config", "check"],
        capture_output=True, text=True, check=False, timeout=60)
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def serve_accepts(option: str) -> bool:
    """Whether `llmsec-aio serve --help` lists `option` (features being added concurrently)."""
    result = subprocess.run([sys.executable, "-m", "llmsec_aio", "serve", "--help"],
                            capture_output=True, text=True, check=False, timeout=60)
    return option in result.stdout


# ---- tokens ----------------------------------------------------------------------------

def token_service(config_path: Path, alg: str) -> TokenService:
    """Built the way the tests build it: the keys folder through load_keyring, `alg` signing."""
    config = load_config(config_path, env={})
    return TokenService(load_keyring(config.keys.dir, alg), issuer=config.issuer,
                        audience=config.audience, roles=config.roles, leeway=config.leeway,
                        clock=time.time)


def _mint_chunk(config_path: Path, alg: str, count: int) -> list[str]:
    service = token_service(config_path, alg)
    return [service.issue(AGENT, AGENT_ROLE, TOKEN_TTL).token for _ in range(count)]


def mint_tokens(dep: Deployment, alg: str, count: int, path: Path) -> Path:
    """`count` distinct valid tokens of the agent, one per line, signed in parallel processes."""
    workers = max(1, min(os.cpu_count() or 1, 4))
    chunks = [count // workers + (1 if i < count % workers else 0) for i in range(workers)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = pool.map(_mint_chunk, [dep.config_path] * workers, [alg] * workers, chunks)
        tokens = [t for part in parts for t in part]
    if len(set(tokens)) != count:
        raise BenchError(f"minted {len(set(tokens))} distinct tokens, wanted {count}")
    path.write_text("\n".join(tokens) + "\n")
    return path


# ---- processes -------------------------------------------------------------------------

def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def process_tree(root: int) -> list[int]:
    """`root` and its live descendants, from /proc."""
    parents = {int(p.name): _ppid(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()}
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier]
        tree.extend(children)
        frontier = children
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the given processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return total / CLK_TCK


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(kb) * 1024


def _kill_leftovers(pids: list[int]) -> None:
    """Workers that outlived their parent's SIGTERM handling: end them, by pid."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


@contextmanager
def gateway(dep: Deployment, log_path: Path, commands: list[str],
            extra_args: list[str] | None = None) -> Iterator[GatewayProcess]:
    """`python -m llmsec_aio serve` for the deployment until the block exits (and its workers)."""
    port = free_port()
    base = [sys.executable, "-m", "llmsec_aio", "--config", str(dep.config_path), "serve",
            "--host", "127.0.0.1", "--port", str(port)]
    commands.append(" ".join([*base, *(extra_args or [])]))
    gw = start_gateway(dep.config_path, log_path, port, extra_args=extra_args)
    try:
        yield gw
    finally:
        workers = [pid for pid in process_tree(gw.process.pid) if pid != gw.process.pid]
        stop_gateway(gw)
        _kill_leftovers([pid for pid in workers if _ppid(pid) is not None])


@contextmanager
def floor_app(log_path: Path, commands: list[str]) -> Iterator[int]:
    """bench/floor_app.py on a free port; yields the port."""
    port = free_port()
    command = [sys.executable, "-m", "bench.floor_app", "--port", str(port)]
    commands.append(" ".join(command))
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, timeout=20, alive=lambda: process.poll() is None)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
