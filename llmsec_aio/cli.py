"""`llmsec-aio`: serve, first-run setup, config check, keys, users and credentials.

The CLI is the only place that prints or exits; everything else raises.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .audit import audit_log
from .config import ALGORITHMS, Config, ServerConfig, load_config
from .errors import ConfigError, InvalidToken
from .keys import generate_key, load_keyring
from .keystate import MANIFEST, KeyEntry, KeyState, write_manifest
from .passwords import BCRYPT_MAX_BYTES, generate_password, hash_password
from .reloader import PID_FILE, STATUS_FILE, live_pid
from .revocation import Revocation
from .revocation_store import StoreUnavailable
from .rotation import add_next_key, compromise, rotate
from .runtime import build_snapshot
from .server import run_event_loop, serve
from .shared import store_revocation
from .users import USERNAME, read_entries, write_entries
from .workers import WORKER_ENV, supervise

log = logging.getLogger("llmsec_aio")

EXIT_USAGE = 2
MIN_PASSWORD = 8


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


# ---- serve and the running server -------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    config = _config(args)
    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port
    if args.workers < 1:
        raise CliError("--workers must be at least 1")
    if args.workers > 1:
        return supervise(config, host, port, args.workers)
    worker = os.environ.get(WORKER_ENV)
    run_event_loop(serve(config, host, port, worker=int(worker) if worker else None))
    return 0


def _running_pid(config: Config) -> int | None:
    return live_pid(config.server.state_dir / PID_FILE)


def _signal_reload(config: Config) -> int | None:
    pid = _running_pid(config)
    if pid is not None:
        os.kill(pid, signal.SIGHUP)
    return pid


def _read_status(config: Config) -> dict[str, Any] | None:
    try:
        data = json.loads((config.server.state_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _state_config(args: argparse.Namespace) -> Config:
    """The config for finding the state folder, even when the file is broken (the server
    then reports why); a broken file falls back to the defaults beside it."""
    try:
        return _config(args)
    except ConfigError:
        path = Path(args.config).resolve()
        return Config(path=path, server=ServerConfig(state_dir=path.parent / "state"))


def cmd_reload(args: argparse.Namespace) -> int:
    """Send SIGHUP to the server named by the pid file and report the outcome."""
    config = _state_config(args)
    sent = time.time()
    pid = _signal_reload(config)
    if pid is None:
        raise CliError(f"no running server (no live pid in {config.server.state_dir / PID_FILE})")
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        reloads = (_read_status(config) or {}).get("reloads", [])
        done = [r for r in reloads if r["trigger"] == "SIGHUP" and r["at"] >= sent]
        if done:
            last = done[-1]
            print(f"reload {'ok' if last['ok'] else 'FAILED'}: {last['message']}")
            return 0 if last["ok"] else 1
        time.sleep(0.05)
    print(f"sent SIGHUP to {pid}; no outcome reported within {args.wait} s")
    return 1


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def cmd_status(args: argparse.Namespace) -> int:
    config = _state_config(args)
    status = _read_status(config)
    pid = _running_pid(config)
    if status is None or pid is None:
        print(f"not running (no live server for {config.path})")
        return 1
    now = time.time()
    print(f"running: pid {pid}, {status['listening']}, up {_ago(now - status['started'])}")
    print(f"users: {status['users']}")
    for key in status["keys"]:
        print(f"key {key['kid']}  {key['alg']:6} {key['state']:8} since {_ago(now - key['since'])}")
    for kid in status["compromised"]:
        print(f"key {kid}  compromised")
    for r in status["reloads"][-5:]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["at"]))
        print(f"reload {when} ({r['trigger']}): {'ok' if r['ok'] else 'FAILED'}: {r['message']}")
    return 0


# ---- first run and config ----------------------------------------------------------------

def cmd_init(args: argparse.Namespace) -> int:
    """Create what a first run needs, only if absent: a signing key and demo credentials."""
    config = _config(args)
    folder = config.keys.dir
    if not any(folder.glob("*.pem")):
        key = generate_key(folder, config.keys.algorithm)
        write_manifest(folder, [KeyEntry(key.file, KeyState.ACTIVE, time.time())])
        print(f"created signing key {key.kid} ({key.alg}) in {folder}")
    path = config.credentials.file
    if not path.exists():
        print(f"created demo credentials in {path}; the passwords are shown only this once:")
        _generate_users(config, per_role=1)
    elif any(folder.glob("*.pem")):
        print(f"keys in {folder} and credentials in {path} exist; nothing to create")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    config = _config(args)
    snapshot = build_snapshot(config, clock=lambda: 0.0)
    for file in snapshot.keyring.ignored:
        print(f"note: {config.keys.dir / file} is not listed in keyring.yaml and is ignored")
    print(f"{config.path}: ok")
    return 0


# ---- keys --------------------------------------------------------------------------------

def _after_key_change(config: Config, lines: list[str]) -> None:
    for line in lines:
        print(line)
    pid = _signal_reload(config)
    where = f"server {pid} reloaded (SIGHUP)" if pid else "a running server picks it up on its next reload"
    print(where)


def cmd_keys_generate(args: argparse.Namespace) -> int:
    """With a keyring.yaml the new key is published as next; without one the newest key signs."""
    config = _config(args)
    alg = args.alg or config.keys.algorithm
    folder = config.keys.dir
    if (folder / MANIFEST).exists():
        key = add_next_key(config, alg, time.time())
    else:
        key = generate_key(folder, alg)
    print(key.kid)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    config = _config(args)
    ring = load_keyring(config.keys.dir, config.keys.algorithm)
    now = time.time()
    for key in sorted(ring.keys.values(), key=lambda k: k.file):
        print(f"{key.kid}  {key.alg:6}  {key.state.value:8}  {_ago(now - key.since):>5}  {key.file}")
    for kid in sorted(ring.compromised):
        print(f"{kid}  compromised")
    for file in ring.ignored:
        print(f"(not in keyring.yaml, ignored)  {file}")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    config = _config(args)
    alg = args.alg or load_keyring(config.keys.dir, config.keys.algorithm).signing.alg
    outcome = rotate(config, alg, time.time(), force=args.force)
    _after_key_change(config, outcome.lines)
    return 0 if outcome.promoted else 1


def cmd_keys_compromise(args: argparse.Namespace) -> int:
    config = _config(args)
    try:
        outcome = compromise(config, args.kid, time.time())
    except LookupError as exc:
        raise CliError(str(exc)) from None
    _after_key_change(config, outcome.lines)
    return 0


# ---- revocation ----------------------------------------------------------------------------

def cmd_revoke(args: argparse.Namespace) -> int:
    """Revoke a jti, a whole subject, or the token given, in the store the servers follow."""
    config = _config(args)
    now = time.time()
    keep_for = config.max_ttl + config.leeway
    if args.token:
        snapshot = build_snapshot(config, clock=time.time)
        try:
            claims = snapshot.tokens.verify(args.token.strip())
        except InvalidToken as exc:
            raise CliError(f"that token is not valid now ({exc.reason}); nothing to revoke") from None
        record = Revocation("jti", claims.jti, now, claims.exp)
    elif args.jti:
        record = Revocation("jti", args.jti, now, now + keep_for)
    else:
        record = Revocation("sub", args.sub, now, now + keep_for)
    try:
        asyncio.run(store_revocation(config, record))
    except StoreUnavailable as exc:
        raise CliError(f"not revoked: {exc}") from None
    print(f"revoked {record.kind} {record.value}")
    return 0


# ---- users and credentials ---------------------------------------------------------------

def _check_name(name: str) -> None:
    if not USERNAME.fullmatch(name):
        raise CliError(f"invalid username {name!r}: use 1-64 letters, digits and ._@+-")


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat: ") != password:
            raise CliError("the passwords differ")
    if len(password) < MIN_PASSWORD:
        raise CliError(f"passwords need at least {MIN_PASSWORD} characters")
    if len(password.encode()) > BCRYPT_MAX_BYTES:
        raise CliError(f"password longer than {BCRYPT_MAX_BYTES} bytes (bcrypt's limit)")
    return password


def cmd_users_add(args: argparse.Namespace) -> int:
    config = _config(args)
    _check_name(args.name)
    if args.role not in config.roles:
        raise CliError(f"unknown role {args.role!r}; roles: {', '.join(config.roles)}")
    password = _read_password(args)
    entries = read_entries(config.credentials.file)
    entries[args.name] = {"role": args.role,
                          "hash": hash_password(password, config.credentials.bcrypt_cost)}
    write_entries(config.credentials.file, entries)
    print(f"user {args.name} ({args.role}) saved to {config.credentials.file}")
    return 0


def cmd_users_remove(args: argparse.Namespace) -> int:
    config = _config(args)
    entries = read_entries(config.credentials.file)
    if entries.pop(args.name, None) is None:
        raise CliError(f"no user {args.name!r}")
    write_entries(config.credentials.file, entries)
    print(f"user {args.name} removed")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    config = _config(args)
    for name, entry in sorted(read_entries(config.credentials.file).items()):
        flag = " (disabled)" if isinstance(entry, dict) and entry.get("disabled") else ""
        role = entry.get("role") if isinstance(entry, dict) else "?"
        print(f"{name}  {role}{flag}")
    return 0


def cmd_users_import(args: argparse.Namespace) -> int:
    """Import the old `.env` format (USERNAME=PASSWORD, role from the 4-letter prefix)."""
    config = _config(args)
    by_prefix = {role.prefix: role.name for role in config.roles.values()}
    entries = read_entries(config.credentials.file)
    imported = skipped = 0
    for number, raw in enumerate(Path(args.file).read_text("utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, eq, password = line.removeprefix("export ").partition("=")
        name, password = name.strip(), password.strip().strip("'\"")
        role = by_prefix.get(name[:4])
        problem = (
            "no '=' on the line" if not eq else
            "invalid username" if not USERNAME.fullmatch(name) else
            f"no role has the prefix {name[:4]!r}" if role is None else
            "empty password" if not password else
            "password longer than 72 bytes" if len(password.encode()) > BCRYPT_MAX_BYTES else ""
        )
        if problem:
            print(f"{args.file}:{number}: skipped: {problem}", file=sys.stderr)
            skipped += 1
            continue
        entries[name] = {"role": role, "hash": hash_password(password, config.credentials.bcrypt_cost)}
        imported += 1
    write_entries(config.credentials.file, entries)
    print(f"imported {imported} users ({skipped} skipped) into {config.credentials.file}")
    return 0


def _generate_users(config: Config, per_role: int) -> None:
    entries = read_entries(config.credentials.file)
    created: list[tuple[str, str, str]] = []
    for role in config.roles.values():
        for _ in range(per_role):
            name = f"{role.prefix}-{secrets.token_hex(4)}"
            password = generate_password()
            entries[name] = {"role": role.name,
                             "hash": hash_password(password, config.credentials.bcrypt_cost)}
            created.append((name, role.name, password))
    write_entries(config.credentials.file, entries)
    width = max(len(n) for n, _, _ in created)
    for name, role_name, password in created:
        print(f"  {name:{width}}  {role_name:16}  {password}")


def cmd_credentials_generate(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.users_per_role < 1:
        raise CliError("--users-per-role must be at least 1")
    print(f"writing hashes to {config.credentials.file}; the passwords are shown only this once:")
    _generate_users(config, args.users_per_role)
    return 0


# ---- wiring ------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmsec-aio", description="Security gateway for self-hosted LLMs.")
    parser.add_argument("--config", default=os.environ.get("LLMSEC_CONFIG", "config.yaml"),
                        help="path to config.yaml (default: $LLMSEC_CONFIG or ./config.yaml)")
    # Accepted after the subcommand too; SUPPRESS keeps it from resetting a value given before.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help="path to config.yaml")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: object, help_: str,
            into: argparse._SubParsersAction[argparse.ArgumentParser] = sub) -> argparse.ArgumentParser:
        p = into.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add("serve", cmd_serve, "run the gateway")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int, default=1,
                   help="server processes sharing the port (SO_REUSEPORT); default 1")
    p = add("reload", cmd_reload, "make the running server reload config, keys and users (SIGHUP)")
    p.add_argument("--wait", type=float, default=5.0, help="seconds to wait for the outcome")
    add("status", cmd_status, "show the running server's keys and recent reloads")
    add("init", cmd_init, "first run: create a signing key and demo credentials if absent")

    def group(name: str, help_: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        return sub.add_parser(name, help=help_, parents=[common]).add_subparsers(dest="sub", required=True)

    config = group("config", "configuration commands")
    add("check", cmd_config_check, "load config, keys and credentials; print every problem", config)

    keys = group("keys", "signing keys")
    p = add("generate", cmd_keys_generate, "add a key to the keys folder and print its kid", keys)
    p.add_argument("--alg", choices=ALGORITHMS)
    add("list", cmd_keys_list, "list keys: kid, algorithm, state, age, file", keys)
    p = add("rotate", cmd_keys_rotate,
            "promote the next key, retire the active one, drop retired keys past their overlap", keys)
    p.add_argument("--alg", choices=ALGORITHMS,
                   help="algorithm of the new active key (default: the current one)")
    p.add_argument("--force", action="store_true",
                   help="activate a next key published less than keys.jwks_max_age ago")
    p = add("compromise", cmd_keys_compromise, "refuse a key and its tokens at once", keys)
    p.add_argument("kid")

    users = group("users", "the credentials file")
    p = add("add", cmd_users_add, "add or replace a user (password from a prompt)", users)
    p.add_argument("name")
    p.add_argument("--role", required=True)
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p = add("remove", cmd_users_remove, "remove a user", users)
    p.add_argument("name")
    add("list", cmd_users_list, "list users and roles", users)
    p = add("import", cmd_users_import, "import an old .env file (USERNAME=PASSWORD)", users)
    p.add_argument("file")

    p = add("revoke", cmd_revoke, "revoke a token (by jti or the token itself) or every token of a subject")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--jti", help="the jti claim of the token to refuse")
    what.add_argument("--sub", help="refuse every token issued to this subject until now")
    what.add_argument("--token", help="the token itself (its jti and exp are read from it)")

    creds = group("credentials", "bulk credentials")
    p = add("generate", cmd_credentials_generate, "random users per role; passwords shown once", creds)
    p.add_argument("--users-per-role", type=int, default=1)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The server logs its work; other commands print what they did and log only problems.
    level = logging.INFO if args.command == "serve" else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Audit events are JSON lines on their own logger: route them apart if you like.
    if not audit_log.handlers:
        audit_handler = logging.StreamHandler()
        audit_handler.setFormatter(logging.Formatter("%(message)s"))
        audit_log.addHandler(audit_handler)
        audit_log.setLevel(logging.INFO)
        audit_log.propagate = False
    try:
        return int(args.func(args))
    except ConfigError as exc:
        sep = " " if len(exc.problems) == 1 else "\n"
        print(f"llmsec-aio: configuration error:{sep}{exc}", file=sys.stderr)
        return EXIT_USAGE
    except (CliError, OSError) as exc:
        print(f"llmsec-aio: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `llmsec-aio status | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
