"""The key ring: PEM private keys in the keys folder, RFC 7638 kids, the signing key and the JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import Algorithm

from .errors import ConfigError, Problem
from .keystate import KeyState, load_manifest

MIN_RSA_BITS = 2048
RSA_BITS = 3072

PrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ed25519.Ed25519PublicKey | rsa.RSAPublicKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")


def public_members(public: PublicKey) -> dict[str, str]:
    """The JWK members that identify a public key (RFC 7638 required members)."""
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    numbers = public.public_numbers()
    return {"e": b64url(_int_bytes(numbers.e)), "kty": "RSA", "n": b64url(_int_bytes(numbers.n))}


def thumbprint(public: PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), used as the kid."""
    canonical = json.dumps(public_members(public), separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


@dataclass(frozen=True)
class Key:
    """One key pair; `verifier` is the parsed PyJWT algorithm, fixed by the key, never by a token."""

    kid: str
    alg: str
    private: PrivateKey
    public: PublicKey
    file: str
    verifier: Algorithm
    state: KeyState = KeyState.ACTIVE
    since: float = 0.0

    def jwk(self) -> dict[str, str]:
        return {**public_members(self.public), "kid": self.kid, "alg": self.alg, "use": "sig"}


@dataclass(frozen=True)
class KeyRing:
    """The keys that verify (next, active, retired) by kid, the one that signs, the compromised
    kids, and the JWKS body published for the verifying keys."""

    keys: Mapping[str, Key]
    signing: Key
    compromised: frozenset[str]
    jwks_body: bytes
    etag: str
    ignored: tuple[str, ...] = ()  # PEM files present but not listed in keyring.yaml

    def get(self, kid: str) -> Key | None:
        return self.keys.get(kid)


def algorithm_of(private: Any) -> str | None:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(private, rsa.RSAPrivateKey):
        return "RS256"
    return None


def load_key(path: Path) -> Key:
    """Parse one PEM private key file; raise ConfigError saying what is wrong with it."""
    name = str(path)

    def fail(expected: str, found: str) -> ConfigError:
        return ConfigError([Problem(name, None, "(key)", expected, found)])

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail("a readable PEM file", type(exc).__name__) from None
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise fail("an unencrypted private key", "an encrypted key") from None
    except (ValueError, Exception):  # cryptography raises several types for junk input
        raise fail("a PEM private key (Ed25519 or RSA)", "unreadable PEM data") from None
    alg = algorithm_of(private)
    if alg is None:
        raise fail("an Ed25519 or RSA key", f"an {type(private).__name__.removesuffix('PrivateKey')} key")
    if isinstance(private, rsa.RSAPrivateKey) and private.key_size < MIN_RSA_BITS:
        raise fail(f"an RSA key of at least {MIN_RSA_BITS} bits", f"{private.key_size} bits")
    assert isinstance(private, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise fail("a key readable by its owner only (chmod 600)", f"mode {mode:04o}")
    public = private.public_key()
    return Key(
        kid=thumbprint(public), alg=alg, private=private, public=public, file=path.name,
        verifier=jwt.get_algorithm_by_name(alg),
    )


def load_keyring(folder: Path, algorithm: str) -> KeyRing:
    """Load the keys folder. With a `keyring.yaml` manifest, its states rule and unlisted files
    are ignored; without one, the newest file of `algorithm` signs and every other key verifies."""
    if not folder.is_dir():
        raise ConfigError([Problem(str(folder), None, "keys.dir", "a folder of PEM keys",
                                   "no such folder")])
    paths = {p.name: p for p in sorted(folder.glob("*.pem"))}
    entries = load_manifest(folder, set(paths))
    if entries is None:
        return _ring_without_manifest(folder, paths, algorithm)
    problems: list[str] = []
    loaded: list[Key] = []
    for entry in entries:
        try:
            key = load_key(paths[entry.file])
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        loaded.append(replace(key, state=entry.state, since=entry.since))
    keys = _unique(loaded, problems)
    if problems:
        raise ConfigError(problems)
    compromised = frozenset(k.kid for k in keys.values() if k.state is KeyState.COMPROMISED)
    verifying = {kid: k for kid, k in keys.items() if kid not in compromised}
    [signing] = [k for k in verifying.values() if k.state is KeyState.ACTIVE]
    ignored = tuple(sorted(set(paths) - {e.file for e in entries}))
    return replace(build_keyring(verifying, signing, compromised), ignored=ignored)


def _unique(keys: list[Key], problems: list[str]) -> dict[str, Key]:
    by_kid: dict[str, Key] = {}
    for key in keys:
        if key.kid in by_kid:
            problems.append(f"{key.file}: (key): expected a key of its own, found the same key as "
                            f"{by_kid[key.kid].file} (kid {key.kid})")
            continue
        by_kid[key.kid] = key
    return by_kid


def _ring_without_manifest(folder: Path, paths: Mapping[str, Path], algorithm: str) -> KeyRing:
    problems: list[str] = []
    loaded: list[Key] = []
    for path in paths.values():
        try:
            loaded.append(load_key(path))
        except ConfigError as exc:
            problems.extend(exc.problems)
    keys = _unique(loaded, problems)
    candidates = [k for k in keys.values() if k.alg == algorithm]
    if not candidates and not problems:
        problems.append(f"{folder}: keys.dir: expected at least one {algorithm} key, found none "
                        f"(create one with: llmsec-aio keys generate --alg {algorithm})")
    if problems:
        raise ConfigError(problems)
    newest = max(candidates, key=lambda k: k.file)
    # The older keys stopped signing when the newest one appeared.
    since = paths[newest.file].stat().st_mtime
    states = {kid: replace(k, state=KeyState.ACTIVE if k is newest else KeyState.RETIRED, since=since)
              for kid, k in keys.items()}
    return build_keyring(states, states[newest.kid], frozenset())


def build_keyring(keys: Mapping[str, Key], signing: Key, compromised: frozenset[str]) -> KeyRing:
    published = sorted(keys.values(), key=lambda k: k.file)
    body = json.dumps({"keys": [k.jwk() for k in published]}, separators=(",", ":")).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return KeyRing(keys=MappingProxyType(dict(keys)), signing=signing, compromised=compromised,
                   jwks_body=body, etag=etag)


def unsafe_removals(old: KeyRing, new: KeyRing, now: float, overlap: float) -> list[str]:
    """Keys that `new` drops although tokens they signed may still be alive (compromise is fine)."""
    problems = []
    for kid, key in old.keys.items():
        if kid in new.keys or kid in new.compromised or key.state is KeyState.NEXT:
            continue
        # An active key signed until now; a retired one until it was retired.
        live_until = (now if key.state is KeyState.ACTIVE else key.since) + overlap
        if live_until > now:
            until = datetime.fromtimestamp(live_until, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            problems.append(f"{key.file}: key {kid} ({key.state}) can still verify live tokens "
                            f"until {until}; keep it retired until then, or mark it compromised")
    return problems


def generate_private_key(alg: str) -> PrivateKey:
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    raise ValueError(f"unsupported algorithm {alg!r}")


def write_private_key(folder: Path, private: PrivateKey, now: datetime | None = None) -> Path:
    """Write `private` as PKCS#8 PEM, mode 0600, named so that newer keys sort last."""
    folder.mkdir(parents=True, exist_ok=True)
    alg = algorithm_of(private) or "key"
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{stamp}-{alg.lower()}.pem"
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_suffix(".pem.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def generate_key(folder: Path, alg: str) -> Key:
    """Create a new key in `folder` and return it loaded (CLI and first run)."""
    return load_key(write_private_key(folder, generate_private_key(alg)))
