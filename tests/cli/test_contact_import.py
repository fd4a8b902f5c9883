"""`deskctl contact import FILE.csv` (SPEC §12): upsert by email, attributes, every bad
line reported with its number (exit 65, nothing imported), --dry-run, stdin, the role
needed, the SLA of a contact whose VIP flag changes, and 10,000 rows in a few seconds."""

from __future__ import annotations

import json
import time

import pytest

from tests.factories import make_conversation


def _write(tmp_path, text: str | bytes, name="contacts.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def _contacts(desk) -> dict[str, dict]:
    rows = desk.rows("SELECT email, name, phone, account_id, vip, attributes FROM contacts ORDER BY id")
    for row in rows:
        row["vip"] = bool(row["vip"])
        if isinstance(row["attributes"], str):
            row["attributes"] = json.loads(row["attributes"])
    return {row["email"]: row for row in rows}


@pytest.fixture
def known(seeded):
    seeded.ok("contact", "add", "--email", "lea@example.fr", "--name", "Léa Dubois", "--phone", "+33 1 23",
              "--attr", "lang=fr", "--attr", "plan=silver")
    return seeded


def test_creates_new_contacts_and_updates_known_ones_by_email(known, tmp_path):
    path = _write(tmp_path, (
        "Email,name,vip,phone,account,plan,region\n"
        "LEA@Example.FR,,yes,,ACME-1,gold,\n"           # known (other case): empty cells keep values
        "max@example.com,Max Power,false,+1 555,,,north\n"
        "zoe@example.com,,,,,,\n"                        # only an email: defaults
    ))
    result = known.run("contact", "import", path)
    assert result.exit_code == 0, result
    assert result.stdout == ""
    assert result.stderr.strip() == "imported 3 contacts: 2 created, 1 updated"
    assert _contacts(known) == {
        "lea@example.fr": {"email": "lea@example.fr", "name": "Léa Dubois", "phone": "+33 1 23",
                           "account_id": "ACME-1", "vip": True, "attributes": {"lang": "fr", "plan": "gold"}},
        "max@example.com": {"email": "max@example.com", "name": "Max Power", "phone": "+1 555", "account_id": None,
                            "vip": False, "attributes": {"region": "north"}},
        "zoe@example.com": {"email": "zoe@example.com", "name": "zoe", "phone": None, "account_id": None,
                            "vip": False, "attributes": {}},
    }
    # The same file again changes nothing, and says so.
    again = known.ok("contact", "import", path)
    assert again.stderr.strip() == "imported 3 contacts: 0 created, 0 updated, 3 unchanged"


def test_dry_run_checks_and_counts_but_writes_nothing(known, tmp_path):
    path = _write(tmp_path, "email,name\nlea@example.fr,Léa D.\nnew@example.com,New\n")
    before = known.dump()
    result = known.ok("contact", "import", path, "--dry-run")
    assert result.stderr.strip() == "would import 2 contacts: 1 created, 1 updated"
    assert known.dump() == before
    bad = known.run("contact", "import", _write(tmp_path, "email\nnot-an-address\n", "bad.csv"), "-n")
    assert bad.exit_code == 65 and "line 2:" in bad.stderr
    assert known.dump() == before


def test_reads_stdin_with_a_bom_and_crlf(known):
    data = "\ufeffemail,name,vip\r\nada@example.com,Ada Lovelace,1\r\n".encode()
    result = known.ok("contact", "import", "-", input=data)
    assert result.stderr.strip() == "imported 1 contact: 1 created, 0 updated"
    assert _contacts(known)["ada@example.com"]["name"] == "Ada Lovelace"
    assert _contacts(known)["ada@example.com"]["vip"] is True


def test_every_bad_line_is_reported_with_its_number_and_nothing_is_imported(known, tmp_path):
    lines = [
        "email,name,vip,plan",                             # 1
        "ok@example.com,Fine,no,gold",                     # 2
        'multi@example.com,"Two',                          # 3  a quoted name over two lines
        'lines",yes,',                                     # 4
        "not-an-address,Bad,no,",                          # 5  bad email
        "vip@example.com,Bad VIP,maybe,",                  # 6  bad vip value
        "OK@example.com,Again,no,",                        # 7  duplicate of line 2 (case-insensitive)
        "short@example.com,Short",                         # 8  wrong column count
        ",No email,no,",                                   # 9  no email
        "",                                                # 10 blank: skipped
        "x" * 10 + "@example.com," + "n" * 201 + ",no,",   # 11 name too long
        "fine@example.com,Fine Too,true,",                 # 12
    ]
    data = ("\n".join(lines) + "\n").encode() + "latin@example.com,Hélène,no,\n".encode("latin-1")  # 13
    path = _write(tmp_path, data)
    before = known.dump()
    result = known.run("contact", "import", path)
    assert result.exit_code == 65, result
    assert result.stdout == ""
    reported = [line.removeprefix("deskctl: ") for line in result.stderr.splitlines()]
    assert [r.split(":")[0] for r in reported[:-1]] == ["line 5", "line 6", "line 7", "line 8", "line 9",
                                                       "line 11", "line 13"]
    assert "invalid email address" in reported[0] and "not-an-address" in reported[0]
    assert "invalid vip value 'maybe'" in reported[1]
    assert "duplicate email ok@example.com (first on line 2)" in reported[2]
    assert "2 fields, the header has 4" in reported[3]
    assert "no email" in reported[4]
    assert "name is longer than 200 characters" in reported[5]
    assert "not valid UTF-8" in reported[6]
    assert reported[-1] == f"7 bad lines in {path}; nothing imported"
    assert known.dump() == before


@pytest.mark.parametrize("text, message", [
    ("", "line 1: no header row"),
    ("\n\n", "line 1: no header row"),
    ("name,phone\nLéa,+33\n", "line 1: no email column"),
    ("email,name,Email\n", "line 1: column 'Email' appears twice"),
    ("email,account,account_id\n", "line 1: column 'account_id' appears twice"),
    ("email,bad key!\n", "line 1: column 'bad key!' is not a valid attribute name"),
    ("email,,name\n", "line 1: column 2 has no name"),
    ('email,name\na@example.com,"x"y\n', "line 2:"),
    ("email,name\na@example.com,nul\x00here\n", "line 2: name contains a NUL character"),
])
def test_bad_headers_and_malformed_csv_are_data_errors(known, tmp_path, text, message):
    before = known.dump()
    result = known.run("contact", "import", _write(tmp_path, text))
    assert result.exit_code == 65, result
    assert message in result.stderr
    assert known.dump() == before


def test_header_only_imports_nothing(known, tmp_path):
    result = known.ok("contact", "import", _write(tmp_path, "email,name,phone,account,vip\n"))
    assert result.stderr.strip() == "imported 0 contacts: 0 created, 0 updated"


def test_usage_errors_and_role(known, tmp_path):
    path = _write(tmp_path, "email\nnew@example.com\n")
    before = known.dump()
    assert known.run("contact", "import", tmp_path / "missing.csv").exit_code == 2
    denied = known.run("contact", "import", path, as_="alice")
    assert denied.exit_code == 5 and "supervisor or admin" in denied.stderr
    assert known.dump() == before
    assert known.ok("contact", "import", path, as_="carol").stderr.startswith("imported 1 contact")


def test_a_vip_change_refreshes_the_sla_of_open_conversations(known, tmp_path):
    config = tmp_path / "sla.yaml"
    config.write_text("sla:\n  policies:\n"
                      "    - {name: vip, when: {vip: true}, first_response: 30m, hours: 24x7}\n"
                      "    - {name: default, first_response: 4h, hours: 24x7}\n")
    env = {"DESKCTL_CONFIG": str(config)}
    open_id = make_conversation(known, contact_email="lea@example.fr")
    closed_id = make_conversation(known, contact_email="lea@example.fr", status="closed")
    other_id = make_conversation(known, contact_email="sam@example.com")
    known.ok("contact", "import", _write(tmp_path, "email,vip\nlea@example.fr,true\nsam@example.com,no\n"), env=env)
    policies = {r["id"]: r["sla_policy"] for r in known.rows("SELECT id, sla_policy FROM conversations")}
    assert policies == {open_id: "vip", closed_id: None, other_id: None}


def test_ten_thousand_rows_in_a_few_seconds(known, tmp_path):
    # Half the file updates contacts already there, half creates new ones.
    first = "email,name,phone,account,vip,plan\n" + "".join(
        f"c{i}@example.com,Contact {i},+33 {i},A-{i},no,silver\n" for i in range(5_000))
    known.ok("contact", "import", _write(tmp_path, first, "first.csv"))
    second = "email,name,phone,account,vip,plan\n" + "".join(
        f"C{i}@example.com,Contact {i},+33 {i},A-{i},{'yes' if i % 7 == 0 else 'no'},gold\n"
        for i in range(2_500, 12_500))
    path = _write(tmp_path, second, "second.csv")
    started = time.monotonic()
    result = known.ok("contact", "import", path)
    elapsed = time.monotonic() - started
    assert result.stderr.strip() == "imported 10000 contacts: 7500 created, 2500 updated"
    assert known.scalar("SELECT count(*) FROM contacts") == 12_501
    assert _contacts(known)["c2500@example.com"]["attributes"] == {"plan": "gold"}
    assert elapsed < 8, f"10,000 rows took {elapsed:.1f}s"
