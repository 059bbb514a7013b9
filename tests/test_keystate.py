"""keystate.py: the keyring.yaml manifest and rotation planning."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmsec_aio.errors import ConfigError
from llmsec_aio.keystate import KeyEntry, KeyState, load_manifest, plan_rotation, write_manifest

NOW = 1_800_000_000.0


def test_manifest_round_trip(tmp_path: Path) -> None:
    entries = [KeyEntry("a.pem", KeyState.RETIRED, NOW - 10), KeyEntry("b.pem", KeyState.ACTIVE, NOW)]
    write_manifest(tmp_path, entries)
    assert load_manifest(tmp_path, {"a.pem", "b.pem"}) == entries
    assert load_manifest(tmp_path / "none", set()) is None


def test_manifest_problems_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "keyring.yaml").write_text(
        "keys:\n"
        "  - {file: a.pem, state: active, since: 2026-01-01T00:00:00Z}\n"
        "  - {file: gone.pem, state: next, since: 2026-01-01T00:00:00Z}\n"
        "  - {file: b.pem, state: sleeping, since: yesterday}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_manifest(tmp_path, {"a.pem", "b.pem"})
    path = tmp_path / "keyring.yaml"
    assert info.value.problems == [
        f"{path}:3: keys[1].file: expected an existing key file, found no file 'gone.pem'",
        f"{path}:4: keys[2].state: expected next, active, retired or compromised, found string 'sleeping'",
        f"{path}:4: keys[2].since: expected a UTC timestamp like 2026-01-31T12:00:00Z, "
        "found string 'yesterday'",
    ]


def test_exactly_one_active_key(tmp_path: Path) -> None:
    write_manifest(tmp_path, [KeyEntry("a.pem", KeyState.NEXT, NOW)])
    with pytest.raises(ConfigError, match="expected exactly one key in state active, found 0"):
        load_manifest(tmp_path, {"a.pem"})


ALGS = {"act.pem": "EdDSA", "nxt.pem": "EdDSA", "old.pem": "RS256", "rsa-next.pem": "RS256"}


def test_rotation_promotes_next_and_retires_active() -> None:
    entries = [
        KeyEntry("act.pem", KeyState.ACTIVE, NOW - 1000),
        KeyEntry("nxt.pem", KeyState.NEXT, NOW - 400),
    ]
    plan = plan_rotation(entries, ALGS, "EdDSA", NOW, publish_for=300, overlap=3900)
    assert plan.promoted == "nxt.pem" and plan.generate is None and plan.removed == []
    assert plan.entries == [
        KeyEntry("act.pem", KeyState.RETIRED, NOW),
        KeyEntry("nxt.pem", KeyState.ACTIVE, NOW),
    ]


def test_a_next_key_published_too_recently_waits_unless_forced() -> None:
    entries = [
        KeyEntry("act.pem", KeyState.ACTIVE, NOW - 1000),
        KeyEntry("nxt.pem", KeyState.NEXT, NOW - 100),
    ]
    plan = plan_rotation(entries, ALGS, "EdDSA", NOW, publish_for=300, overlap=3900)
    assert plan.promoted is None and plan.waiting_until == NOW + 200 and plan.entries == entries
    forced = plan_rotation(entries, ALGS, "EdDSA", NOW, publish_for=300, overlap=3900, force=True)
    assert forced.promoted == "nxt.pem"


def test_switching_algorithm_needs_a_next_key_of_that_algorithm() -> None:
    entries = [
        KeyEntry("act.pem", KeyState.ACTIVE, NOW - 1000),
        KeyEntry("nxt.pem", KeyState.NEXT, NOW - 400),
    ]
    assert plan_rotation(entries, ALGS, "RS256", NOW, publish_for=0, overlap=10).generate == "RS256"
    entries.append(KeyEntry("rsa-next.pem", KeyState.NEXT, NOW))
    plan = plan_rotation(entries, ALGS, "RS256", NOW, publish_for=0, overlap=10)
    assert plan.promoted == "rsa-next.pem"


def test_retired_keys_are_removed_only_after_the_overlap() -> None:
    entries = [
        KeyEntry("old.pem", KeyState.RETIRED, NOW - 3900),
        KeyEntry("act.pem", KeyState.ACTIVE, NOW - 3900),
        KeyEntry("nxt.pem", KeyState.NEXT, NOW - 3900),
    ]
    assert plan_rotation(entries, ALGS, "EdDSA", NOW - 1, publish_for=0, overlap=3900).removed == []
    assert plan_rotation(entries, ALGS, "EdDSA", NOW, publish_for=0, overlap=3900).removed == ["old.pem"]
