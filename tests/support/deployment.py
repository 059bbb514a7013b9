"""A throw-away gateway installation in a temp folder: config, two keys, users, a fake clock."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from llmsec_aio.config import Config, load_config
from llmsec_aio.keys import PrivateKey, thumbprint

TEST_COST = 4  # the lowest bcrypt cost: tests check behaviour, not hashing speed

# The users of PUBLIC.md's conventions: an AI agent and a person on the web form.
DEFAULT_USERS = {
    "agent1": ("agent1-pw", "agent_reasoning"),
    "web1": ("web1-pw", "user"),
    "admin1": ("admin1-pw", "admin"),
}


class FakeClock:
    """An injectable clock: tests move time instead of sleeping."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def pem(private: PrivateKey) -> bytes:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def hash_pw(password: str, cost: int = TEST_COST) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


@dataclass
class Deployment:
    """Files of one test instance. `settings` is the config.yaml content as a dict."""

    root: Path
    rsa: rsa.RSAPrivateKey
    ed: ed25519.Ed25519PrivateKey
    settings: dict[str, Any] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def credentials_path(self) -> Path:
        return self.root / "credentials.yaml"

    @property
    def rsa_kid(self) -> str:
        return thumbprint(self.rsa.public_key())

    @property
    def ed_kid(self) -> str:
        return thumbprint(self.ed.public_key())

    def write_key(self, name: str, private: PrivateKey) -> Path:
        self.keys_dir.mkdir(exist_ok=True)
        path = self.keys_dir / name
        path.write_bytes(pem(private))
        path.chmod(0o600)
        return path

    def add_user(self, name: str, password: str, role: str, cost: int = TEST_COST) -> None:
        self.users[name] = {"role": role, "hash": hash_pw(password, cost)}
        self.write()

    def write(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.settings, sort_keys=False))
        self.credentials_path.write_text(yaml.safe_dump({"users": self.users}, allow_unicode=True))

    def config(self) -> Config:
        return load_config(self.config_path, env={})


def make_deployment(root: Path, rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey,
                    **settings: Any) -> Deployment:
    """Both keys in keys/ (Ed25519 signs by default), the default users, and `settings`."""
    dep = Deployment(root=root, rsa=rsa_key, ed=ed_key)
    dep.settings = {
        "issuer": "https://llm.example.test",
        "audience": "llmsec-test",
        "leeway": 5,
        "keys": {"dir": "keys", "algorithm": "EdDSA"},
        "credentials": {"file": "credentials.yaml", "bcrypt_cost": TEST_COST},
        "cookie": {"secure": True},
        **settings,
    }
    dep.write_key("a-rsa.pem", rsa_key)
    dep.write_key("b-ed25519.pem", ed_key)
    dep.users = {name: {"role": role, "hash": hash_pw(pw)} for name, (pw, role) in DEFAULT_USERS.items()}
    dep.write()
    return dep
