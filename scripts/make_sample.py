"""Regenerate data/sample/contacts.csv and contacts.parquet (deterministic).

A HubSpot-shaped export of about 200 contacts, with what real exports hold:
duplicates differing in case and spaces, blanks, junk ("n/a", "foo@"), and
commas, quotes, newlines and non-ASCII text in other fields.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import polars as pl

FIRST = [
    "Alex",
    "Maria",
    "Jürgen",
    "Siobhán",
    "Li",
    "Priya",
    "Zoë",
    "Omar",
    "Chloé",
    "Kenji",
    "Ana",
    "Björn",
    "Fatima",
    "Noah",
    "Olivia",
    "Mateo",
    "Sofia",
    "Liam",
    "Emma",
    "Yusuf",
]
LAST = [
    "Rivera",
    "García",
    "Müller",
    "O'Brien",
    "Wang",
    "Patel",
    "Dubois",
    "Haddad",
    "Núñez",
    "Tanaka",
    "Silva",
    "Lindqvist",
    "Khan",
    "Smith",
    "Jones",
    "Rossi",
    "Nowak",
    "Kim",
]
COMPANIES = [
    "Acme, Inc.",
    "Globex",
    "Initech",
    'Umbrella "Bio"',
    "Hooli",
    "Stark Industries",
    "Wayne Enterprises",
    "Société Générale",
    "Müller & Söhne GmbH",
    "Tyrell Corp",
]
DOMAINS = [
    "acme.com",
    "globex.io",
    "initech.net",
    "umbrella.bio",
    "hooli.com",
    "stark.com",
    "wayne.co",
    "socgen.fr",
    "mueller-soehne.de",
    "tyrell.ai",
]
TITLES = [
    "VP Sales",
    "Head of RevOps",
    "Data Engineer",
    "CTO",
    "Account Executive, EMEA",
    'Marketing Ops "Lead"',
    "Directeur commercial",
]
JUNK = ["n/a", "foo@", "none", "-", "test@test", "@acme.com", "john.doe(at)acme.com"]


def ascii_slug(text: str) -> str:
    table = str.maketrans("üöäéóáñëøåç'", "uoaeoaneoac-")
    return text.lower().translate(table).replace(" ", "")


def build(rows: int = 200, seed: int = 7) -> pl.DataFrame:
    rng = random.Random(seed)
    records = []
    for index in range(rows):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        company = rng.randrange(len(COMPANIES))
        work = f"{ascii_slug(first)}.{ascii_slug(last)}{index % 37}@{DOMAINS[company]}"
        personal = f"{ascii_slug(first)}{ascii_slug(last)}{index % 11}@gmail.com"
        roll = rng.random()
        if roll < 0.08:
            work = ""
        elif roll < 0.14:
            work = rng.choice(JUNK)
        if rng.random() < 0.55:
            personal = ""
        notes = rng.choice(
            [
                "",
                "Met at SaaStr, follow up in Q3",
                'Said "call me back, maybe"',
                "Multi-line note:\nline two, with a comma",
                "Prefers e-mail; très occupé",
                "🚀 key account",
            ]
        )
        records.append(
            {
                "Record ID": 1000 + index,
                "First Name": first,
                "Last Name": last,
                "Email": work,
                "Personal Email": personal,
                "Company Name": COMPANIES[company],
                "Job Title": rng.choice(TITLES),
                "Phone Number": f"+1 (555) {rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}",
                "City": rng.choice(["São Paulo", "München", "New York, NY", "Zürich", "Tokyo", ""]),
                "Create Date": dt.date(2026, 1, 1) + dt.timedelta(days=index),
                "Notes": notes,
            }
        )
    # Re-exports of the same people: same address, other case and spacing.
    for index in range(0, 40, 3):
        twin = dict(records[index])
        twin["Record ID"] = 2000 + index
        twin["Email"] = f"  {twin['Email'].upper()} " if twin["Email"] else twin["Email"]
        records.append(twin)
    rng.shuffle(records)
    return pl.DataFrame(records)


def main() -> None:
    out = Path(__file__).resolve().parent.parent / "data" / "sample"
    frame = build()
    # Exports leave empty cells empty, not "".
    frame = frame.with_columns(pl.col(pl.String).replace("", None))
    frame.write_parquet(out / "contacts.parquet")
    frame.with_columns(pl.col("Create Date").cast(pl.String)).write_csv(out / "contacts.csv")
    print(f"wrote {frame.height} rows to {out}")


if __name__ == "__main__":
    main()
