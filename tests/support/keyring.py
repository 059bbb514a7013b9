"""Test helpers for the key lifecycle: write a manifest for a Deployment, rotate in-process."""

from __future__ import annotations

from llmsec_aio.keystate import KeyEntry, KeyState, write_manifest
from tests.support.deployment import Deployment


def adopt_manifest(dep: Deployment, since: float) -> None:
    """Ed25519 active and RSA next, as `keys rotate` would leave a fresh installation."""
    write_manifest(dep.keys_dir, [KeyEntry("a-rsa.pem", KeyState.NEXT, since),
                                  KeyEntry("b-ed25519.pem", KeyState.ACTIVE, since)])
