"""`llmsec-aio`: serve, first-run setup, config check, keys, users and credentials.

The CLI is the only place that prints or exits; everything else raises.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import secrets
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from .app import create_app, server_limits
from .config import ALGORITHMS, Config, load_config
from .errors import ConfigError
from .handlers import RUNTIME
from .keys import generate_key, load_keyring
from .passwords import BCRYPT_MAX_BYTES, generate_password, hash_password
from .users import USERNAME, read_entries, write_entries

log = logging.getLogger("llmsec_aio")

EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


# ---- serve -------------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    config = _config(args)
    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port
    app = create_app(config)
    asyncio.run(_serve(app, config, host, port))
    return 0


async def _serve(app: web.Application, config: Config, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None, **server_limits(config))
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    log.info("llmsec-aio listening on http://%s:%d (pid %d)", host, port, os.getpid())
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_reload(app)))
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def _reload(app: web.Application) -> None:
    runtime = app[RUNTIME]
    before = runtime.current.config
    try:
        after = (await runtime.reload()).config
    except ConfigError as exc:
        log.error("reload failed, still serving the previous configuration:\n%s", exc)
        return
    if after.server != before.server:
        log.warning("server.* changed; the listening address only changes on restart")


# ---- first run and config ----------------------------------------------------------------

def cmd_init(args: argparse.Namespace) -> int:
    """Create what a first run needs, only if absent: a signing key and demo credentials."""
    config = _config(args)
    folder = config.keys.dir
    if not any(folder.glob("*.pem")):
        key = generate_key(folder, config.keys.algorithm)
        print(f"created signing key {key.kid} ({key.alg}) in {folder}")
    path = config.credentials.file
    if not path.exists():
        print(f"created demo credentials in {path}; the passwords are shown only this once:")
        _generate_users(config, per_role=1)
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    config = _config(args)
    from .runtime import build_snapshot

    build_snapshot(config, clock=lambda: 0.0)
    print(f"{config.path}: ok")
    return 0


# ---- keys --------------------------------------------------------------------------------

def cmd_keys_generate(args: argparse.Namespace) -> int:
    config = _config(args)
    key = generate_key(config.keys.dir, args.alg or config.keys.algorithm)
    print(key.kid)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    config = _config(args)
    ring = load_keyring(config.keys.dir, config.keys.algorithm)
    for key in sorted(ring.keys.values(), key=lambda k: k.file):
        state = "signing" if key is ring.signing else "verify-only"
        print(f"{key.kid}  {key.alg:6}  {state:11}  {key.file}")
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
    if not password:
        raise CliError("empty password")
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
    add("init", cmd_init, "first run: create a signing key and demo credentials if absent")

    config = sub.add_parser("config", help="configuration commands").add_subparsers(dest="sub", required=True)
    add("check", cmd_config_check, "load config, keys and credentials; print every problem", config)

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(dest="sub", required=True)
    p = add("generate", cmd_keys_generate, "add a key to the keys folder and print its kid", keys)
    p.add_argument("--alg", choices=ALGORITHMS)
    add("list", cmd_keys_list, "list keys: kid, algorithm, state, file", keys)

    users = sub.add_parser("users", help="the credentials file").add_subparsers(dest="sub", required=True)
    p = add("add", cmd_users_add, "add or replace a user (password from a prompt)", users)
    p.add_argument("name")
    p.add_argument("--role", required=True)
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p = add("remove", cmd_users_remove, "remove a user", users)
    p.add_argument("name")
    add("list", cmd_users_list, "list users and roles", users)
    p = add("import", cmd_users_import, "import an old .env file (USERNAME=PASSWORD)", users)
    p.add_argument("file")

    creds = sub.add_parser("credentials", help="bulk credentials").add_subparsers(dest="sub", required=True)
    p = add("generate", cmd_credentials_generate, "random users per role; passwords shown once", creds)
    p.add_argument("--users-per-role", type=int, default=1)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"llmsec-aio: configuration error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except (CliError, OSError) as exc:
        print(f"llmsec-aio: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
