from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.emails import lookup_key, lookup_keys, normalise_one, split_key


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("alex@acme.com", "alex@acme.com"),
        ("  Alex.Rivera@ACME.com \t", "alex.rivera@acme.com"),
        ("Alex Rivera <Alex@Acme.com>", "alex@acme.com"),
        ("mailto:alex@acme.com", "alex@acme.com"),
        ("a@x.com; b@y.com", "a@x.com"),
        ("not-an-email, b@y.com", "b@y.com"),
        ('"bob@x.com"', "bob@x.com"),
        ("\u200balex@acme.com\u00a0", "alex@acme.com"),
        ("o'brien+crm@x.ie", "o'brien+crm@x.ie"),
        ("user@bücher.de", "user@bücher.de"),
        ("n/a", None),
        ("foo@", None),
        ("@acme.com", None),
        ("a@b", None),
        ("a..b@x.com", None),
        (".a@x.com", None),
        ("john.doe(at)acme.com", None),
        ("", None),
        (None, None),
    ],
)
def test_normalise_one(cell: str | None, expected: str | None) -> None:
    assert normalise_one(cell) == expected


def test_lookup_keys_states_and_pairs() -> None:
    work = pl.Series(["A@b.com", " a@b.com", None, "n/a", "", "x@y.io", "  "])
    personal = pl.Series([None, "p@gmail.com", "p@gmail.com", None, "  ", "bad", None])
    keys = lookup_keys(work, personal, 7)
    assert keys["lookup_key"].to_list() == [
        lookup_key("a@b.com", None),
        lookup_key("a@b.com", "p@gmail.com"),
        lookup_key(None, "p@gmail.com"),
        None,
        None,
        lookup_key("x@y.io", None),  # the invalid personal email is left out of the request
        None,
    ]
    assert keys["email_state"].to_list() == [
        "lookup",
        "lookup",
        "lookup",
        "invalid_email",
        "no_email",
        "lookup",
        "no_email",
    ]


def test_lookup_keys_without_personal_column() -> None:
    keys = lookup_keys(pl.Series(["X@Y.COM", "x@y.com "]), None, 2)
    assert keys["lookup_key"].n_unique() == 1


def test_split_key_round_trip() -> None:
    assert split_key(lookup_key("a@b.com", None)) == ("a@b.com", None)
    assert split_key(lookup_key(None, "p@q.com")) == (None, "p@q.com")


@given(st.text(max_size=60))
def test_normalise_never_crashes_and_is_idempotent(cell: str) -> None:
    once = normalise_one(cell)
    if once is not None:
        assert once == once.strip().lower()
        assert normalise_one(once) == once


@given(st.emails())
def test_generated_addresses_survive_case_and_spaces(address: str) -> None:
    normalised = normalise_one(address)
    assert normalise_one(f"  {address} ") == normalised
    if address.isascii():
        assert normalise_one(address.upper()) == normalised
