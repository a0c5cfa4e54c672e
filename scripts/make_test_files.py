"""Regenerate tests/data/: small input files shaped like real CRM exports and bad inputs."""

from __future__ import annotations

import gzip
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"

# Every file holds these three people, so every format enriches to the same answer.
PEOPLE = [("Alex", "alex.rivera@acme.com"), ("Zoë", "zoe.muller@globex.io"), ("Li", "")]


def rows(header: list[str], cells: list[list[str]], delimiter: str = ",") -> str:
    def quote(value: str) -> str:
        if any(c in value for c in (delimiter, '"', "\n", "\r")):
            return '"' + value.replace('"', '""') + '"'
        return value

    return "".join(delimiter.join(quote(c) for c in row) + "\r\n" for row in [header, *cells])


def crm_exports() -> dict[str, str]:
    return {
        "hubspot.csv": rows(
            ["Record ID", "First Name", "Email Address", "Company"],
            [["1", name, email, "Acme, Inc."] for name, email in PEOPLE],
        ),
        "salesforce.csv": rows(
            ["Contact ID", "First Name", "Email", "Account Name"],
            [["003A", name, email, "Globex"] for name, email in PEOPLE],
        ),
        "pipedrive.csv": rows(
            ["Person - Name", "Person - Email - Work", "Person - Email - Home"],
            [[name, email, ""] for name, email in PEOPLE],
        ),
        "outlook.csv": rows(
            ["First Name", "E-mail Address", "E-mail 2 Address"],
            [[name, email, ""] for name, email in PEOPLE],
        ),
        "google.csv": rows(
            ["Name", "E-mail 1 - Type", "E-mail 1 - Value"],
            [[name, "* Work", email] for name, email in PEOPLE],
        ),
        "apollo.csv": rows(
            ["First Name", "Email", "Personal Email"],
            [[name, email, ""] for name, email in PEOPLE],
        ),
        "ambiguous.csv": rows(["Name", "Email", "Work Email"], [[n, e, e] for n, e in PEOPLE]),
    }


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    for name, content in crm_exports().items():
        (DATA / name).write_text(content, encoding="utf-8", newline="")
    people = [["Name", "Email", "Notes"]] + [[n, e, "café; 10% off | vip"] for n, e in PEOPLE]
    semicolon = rows(people[0], people[1:], ";")
    (DATA / "excel-semicolon.csv").write_text(semicolon, encoding="utf-8", newline="")
    (DATA / "excel-bom.csv").write_bytes(b"\xef\xbb\xbf" + rows(people[0], people[1:]).encode())
    (DATA / "excel-unicode.txt").write_bytes(rows(people[0], people[1:], "\t").encode("utf-16"))
    (DATA / "legacy-cp1252.csv").write_bytes(rows(people[0], people[1:]).encode("cp1252"))
    (DATA / "pipes.txt").write_text(rows(people[0], people[1:], "|"), encoding="utf-8")
    (DATA / "contacts.tsv").write_text(rows(people[0], people[1:], "\t"), encoding="utf-8")
    with gzip.open(DATA / "contacts.csv.gz", "wb") as handle:
        handle.write(rows(people[0], people[1:]).encode())
    cells = [
        ["1", "Alex Rivera <Alex.Rivera@ACME.com>"],
        ["2", "mailto:zoe.muller@globex.io"],
        ["3", "bad-address; li.wang@initech.net, other@x.com"],
        ["4", '"\u00a0alex.rivera@acme.com\u200b"'],
        ["5", "user@bücher.de"],
        ["6", "n/a"],
    ]
    (DATA / "email-cells.csv").write_text(rows(["id", "Email"], cells), encoding="utf-8")
    (DATA / "has-profile-url.csv").write_text(
        rows(["Email", "profile_url"], [["alex.rivera@acme.com", "keep-me"]]), encoding="utf-8"
    )
    (DATA / "ragged.csv").write_text(
        'Name,Email\r\nAlex,alex@acme.com\r\n"Zoë\nMüller",zoe@globex.io,extra\r\n',
        encoding="utf-8",
    )
    (DATA / "empty.csv").write_bytes(b"")
    (DATA / "corrupt.parquet").write_bytes(b"PAR1" + b"\x13\x37" * 40 + b"PAR1")
    (DATA / "binary.csv").write_bytes(bytes(range(256)) * 8)
    print(f"wrote {len(list(DATA.iterdir()))} files to {DATA}")


if __name__ == "__main__":
    main()
