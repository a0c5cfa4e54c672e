"""Email cells -> normalised addresses and lookup keys, vectorised on polars.

A cell is trimmed and lower-cased first; the first syntactically valid address
in it is kept (exports write `Name <a@b.com>`, `mailto:`, or several per cell).
"""

from __future__ import annotations

import polars as pl

# Local part: RFC 5322 "dot-atom" characters; domain: labels of letters/digits
# (any script, for internationalised domains) and inner hyphens, then a TLD.
_LOCAL = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?"
_TLD = r"(?:\p{L}{2,63}|xn--[a-z0-9-]{2,59})"
VALID_EMAIL = rf"^{_LOCAL}@(?:{_LABEL}\.)+{_TLD}$"
MAX_EMAIL_LENGTH = 254

# Characters exports leave around addresses: zero-width spaces, BOMs, NBSP.
_INVISIBLE = r"[\u200b\u200c\u200d\u2060\ufeff\u00a0]"
# What separates addresses (and display names) inside one cell.
_SEPARATORS = r"[\s<>;,]+"
_WRAPPING = "\"'()[]"

KEY_SEPARATOR = "\t"  # whitespace never occurs in a valid address


def normalise(cell: pl.Expr) -> pl.Expr:
    """Trimmed, lower-cased first valid address of each cell; null if none."""
    cleaned = (
        cell.cast(pl.String).str.replace_all(_INVISIBLE, " ").str.strip_chars().str.to_lowercase()
    )
    tokens = cleaned.str.replace_all(_SEPARATORS, " ").str.strip_chars().str.split(" ")
    candidate = pl.element().str.strip_chars(_WRAPPING).str.strip_prefix("mailto:")
    valid = tokens.list.eval(candidate.filter(is_valid(candidate))).list.first()
    return pl.when(is_valid(cleaned)).then(cleaned).otherwise(valid)


def is_valid(address: pl.Expr) -> pl.Expr:
    """True where `address` (already normalised) is a syntactically valid email."""
    return address.str.contains(VALID_EMAIL) & (address.str.len_chars() <= MAX_EMAIL_LENGTH)


def is_blank(cell: pl.Expr) -> pl.Expr:
    """True where a cell holds nothing but white space (or is null)."""
    text = cell.cast(pl.String).str.replace_all(_INVISIBLE, " ").str.strip_chars()
    return text.is_null() | (text == "")


def normalise_one(value: str | None) -> str | None:
    """`normalise` for a single value (for tests, logs and the Python API)."""
    frame = pl.DataFrame({"cell": [value]}, schema={"cell": pl.String})
    return frame.select(normalise(pl.col("cell"))).item()


def lookup_key(work_email: str | None, personal_email: str | None) -> str:
    """The de-duplication key of one request: both normalised addresses."""
    return f"{work_email or ''}{KEY_SEPARATOR}{personal_email or ''}"


def split_key(key: str) -> tuple[str | None, str | None]:
    """(work_email, personal_email) of a lookup key, None where absent."""
    work, personal = key.split(KEY_SEPARATOR)
    return work or None, personal or None


def lookup_keys(work: pl.Series | None, personal: pl.Series | None, rows: int) -> pl.DataFrame:
    """Per row: `lookup_key` (null when nothing valid) and `email_state`.

    email_state is "lookup", "invalid_email" (something there, nothing valid) or
    "no_email". Normalisation runs once per distinct cell value, since exports
    repeat addresses a lot.
    """
    work_email = normalised_values(work, rows)
    personal_email = normalised_values(personal, rows)
    blank = blank_values(work, rows) & blank_values(personal, rows)
    frame = pl.DataFrame({"work": work_email, "personal": personal_email, "blank": blank})
    has_valid = pl.col("work").is_not_null() | pl.col("personal").is_not_null()
    key = pl.concat_str(
        [pl.col("work").fill_null(""), pl.col("personal").fill_null("")],
        separator=KEY_SEPARATOR,
    )
    return frame.select(
        lookup_key=pl.when(has_valid).then(key),
        email_state=pl.when(has_valid)
        .then(pl.lit("lookup"))
        .when(pl.col("blank"))
        .then(pl.lit("no_email"))
        .otherwise(pl.lit("invalid_email")),
    )


def normalised_values(cells: pl.Series | None, rows: int) -> pl.Series:
    """`normalise` applied to each distinct value, then mapped back onto the rows."""
    if cells is None:
        return pl.Series("email", [None] * rows, dtype=pl.String)
    cells = cells.cast(pl.String).rename("cell")
    distinct = cells.unique().to_frame().with_columns(email=normalise(pl.col("cell")))
    return cells.to_frame().join(
        distinct, on="cell", how="left", maintain_order="left", nulls_equal=True
    )["email"]


def blank_values(cells: pl.Series | None, rows: int) -> pl.Series:
    if cells is None:
        return pl.Series("blank", [True] * rows, dtype=pl.Boolean)
    return cells.to_frame("cell").select(is_blank(pl.col("cell")))["cell"]
