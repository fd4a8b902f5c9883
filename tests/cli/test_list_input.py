"""`list` input that no retry can fix is a usage error (2): a `--query` longer than
`limits.query_chars` (SPEC §13; SQLite answered "pattern too complex", exit 75) and a
malformed `--sort` key (`--id`, an empty key)."""

from __future__ import annotations

import pytest

from tests.factories import make_conversation


def test_an_over_long_query_is_a_usage_error_naming_the_limit(seeded):
    make_conversation(seeded, subject="x" * 10)
    result = seeded.run("list", "--query", "x" * 120_000, fmt="json")
    assert result.exit_code == 2, result
    assert result.stdout == ""
    assert "1000" in result.stderr and "limits.query_chars" in result.stderr
    # Up to the limit it is an ordinary search.
    assert seeded.json("list", "--query", "x" * 10) != []
    assert seeded.run("list", "--query", "%" * 1000).exit_code == 2  # no word to search for


def test_the_query_limit_follows_the_configuration(seeded, tmp_path):
    config = tmp_path / "deskctl.yaml"
    config.write_text("limits: {query_chars: 20}\n")
    result = seeded.run("list", "--query", "y" * 21, env={"DESKCTL_CONFIG": str(config)})
    assert result.exit_code == 2 and "the limit is 20" in result.stderr, result
    assert seeded.run("list", "--query", "y" * 20, env={"DESKCTL_CONFIG": str(config)}).exit_code == 0


def test_a_pattern_the_database_finds_too_complex_is_never_temporary(seeded, tmp_path):
    if seeded.engine_name != "sqlite":
        pytest.skip("SQLite's LIKE pattern length limit (50,000 bytes)")
    config = tmp_path / "deskctl.yaml"
    config.write_text("limits: {query_chars: 200000}\n")
    make_conversation(seeded)
    result = seeded.run("list", "--query", "z" * 120_000, env={"DESKCTL_CONFIG": str(config)}, fmt="json")
    # The full-text index takes a word that long (no LIKE pattern any more); whatever the
    # engine says, it is never "temporary".
    assert result.exit_code in (0, 2), result
    assert "safe to retry" not in result.stderr


@pytest.mark.parametrize("sort", ["--id", "-", "", "id,", "+id", "--created", "created,--id", "nope", "- id"])
def test_a_malformed_sort_key_is_a_usage_error(seeded, sort):
    result = seeded.run("list", f"--sort={sort}", fmt="json")
    assert result.exit_code == 2, result
    assert "invalid sort key" in result.stderr and result.stdout == ""


def test_well_formed_sort_keys_still_work(seeded):
    a = make_conversation(seeded, priority="low")
    b = make_conversation(seeded, priority="urgent")
    assert [r["id"] for r in seeded.json("list", "--sort=-id")] == [b, a]
    assert [r["id"] for r in seeded.json("list", "--sort", "-priority,id")] == [b, a]
    assert [r["id"] for r in seeded.json("list", "--sort", " created , -id ")] == [b, a]
