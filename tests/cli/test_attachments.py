"""`deskctl attachment list/save` (SPEC §12): records in every format, bytes out to
files and to stdout, safe and distinct file names, exit codes, nothing written on failure."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os

import pytest

from deskctl.services.conversations.attachments import safe_name

NOW = "2026-11-23T12:00:00+00:00"
PDF_1 = b"%PDF-1.4 first invoice\n" + bytes(range(256)) * 40
PDF_2 = b"%PDF-1.4 second invoice, a different file with the same name\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\xff" * 300


def _att(filename, data, content_type=None):
    att = {"filename": filename, "data": base64.b64encode(data).decode()}
    if content_type:
        att["content_type"] = content_type
    return att


def _line(msg_id, attachments, text="see attached"):
    return json.dumps({"channel": "chat", "thread": "t-9", "id": msg_id, "text": text,
                       "from": {"name": "Léa", "email": "lea@example.fr"}, "attachments": attachments})


@pytest.fixture
def adesk(seeded):
    seeded.now = NOW
    return seeded


@pytest.fixture
def cid(adesk):
    """A conversation of two messages: facture.pdf + photo.png, then another facture.pdf."""
    content = _line("m1", [_att("facture.pdf", PDF_1), _att("photo.png", PNG)]) + "\n" + \
        _line("m2", [_att("facture.pdf", PDF_2)]) + "\n"
    records = adesk.json("ingest", "jsonl", "-", input=content.encode())
    assert {r["id"] for r in records} == {records[0]["id"]}
    return records[0]["id"]


def _stored_message_ids(desk, cid):
    return [r["id"] for r in desk.rows("SELECT id FROM messages WHERE conversation_id = :c ORDER BY id", c=cid)]


def test_list_gives_the_spec_record_in_every_format(adesk, cid):
    m1, m2 = _stored_message_ids(adesk, cid)
    records = adesk.json("attachment", "list", cid)
    assert [{k: r[k] for k in ("message_id", "name", "content_type", "size", "sha256", "file")} for r in records] == [
        {"message_id": m1, "name": "facture.pdf", "content_type": "application/pdf", "size": len(PDF_1),
         "sha256": hashlib.sha256(PDF_1).hexdigest(), "file": "facture.pdf"},
        {"message_id": m1, "name": "photo.png", "content_type": "image/png", "size": len(PNG),
         "sha256": hashlib.sha256(PNG).hexdigest(), "file": "photo.png"},
        {"message_id": m2, "name": "facture.pdf", "content_type": "application/pdf", "size": len(PDF_2),
         "sha256": hashlib.sha256(PDF_2).hexdigest(), "file": "facture-2.pdf"},
    ]
    assert adesk.ok("attachment", "list", f"#{cid}", fmt="jsonl").jsonl() == records
    for fmt, delimiter in (("csv", ","), ("tsv", "\t")):
        rows = list(csv.DictReader(io.StringIO(adesk.ok("attachment", "list", cid, fmt=fmt).stdout),
                                   delimiter=delimiter))
        assert [(r["message_id"], r["name"], r["size"], r["sha256"]) for r in rows] == \
            [(str(r["message_id"]), r["name"], str(r["size"]), r["sha256"]) for r in records]
    assert adesk.ok("attachment", "list", cid, fmt="ids").stdout.splitlines() == \
        ["facture.pdf", "photo.png", "facture-2.pdf"]
    table = adesk.ok("attachment", "list", cid, fmt="table").stdout
    assert "facture-2.pdf" in table and "image/png" in table


def test_outbound_attachments_are_listed_too(adesk, cid, tmp_path):
    scan = tmp_path / "scan.png"
    scan.write_bytes(PNG + b"scan")
    adesk.ok("reply", cid, "Here is the scan.", "--attach", scan)
    files = [r["file"] for r in adesk.json("attachment", "list", cid)]
    assert files[-1] == "scan.png"


def test_save_all_writes_every_file_with_distinct_names_and_no_temporary_left(adesk, cid, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = adesk.ok("attachment", "save", cid, "--all", "-o", out, fmt="json")
    saved = result.json()
    assert [r["path"] for r in saved] == [str(out / n) for n in ("facture.pdf", "photo.png", "facture-2.pdf")]
    assert sorted(os.listdir(out)) == ["facture-2.pdf", "facture.pdf", "photo.png"]
    assert (out / "facture.pdf").read_bytes() == PDF_1
    assert (out / "facture-2.pdf").read_bytes() == PDF_2
    assert (out / "photo.png").read_bytes() == PNG
    assert "saved 3 attachments" in result.stderr
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "photo.png").stat().st_mode & 0o777 == 0o666 & ~umask


def test_save_by_name_into_the_current_directory(adesk, cid, tmp_path):
    # The test runs in its own working directory (conftest.isolated_env).
    saved = adesk.json("attachment", "save", cid, "photo.png")
    assert [os.path.basename(r["path"]) for r in saved] == ["photo.png"]
    assert open("photo.png", "rb").read() == PNG
    # A file name is unique: facture.pdf is the first of the two attachments named so.
    first = adesk.json("attachment", "save", cid, "facture.pdf")
    assert [os.path.basename(r["path"]) for r in first] == ["facture.pdf"]
    assert open("facture.pdf", "rb").read() == PDF_1


def test_dash_o_dash_writes_the_exact_bytes_of_one_attachment_to_stdout(adesk, cid):
    result = adesk.ok("attachment", "save", cid, "facture.pdf", "-o", "-", fmt="json")
    # "facture.pdf" is first a file name (unique), so it names the first attachment only.
    assert result.raw.stdout_bytes == PDF_1
    assert adesk.ok("attachment", "save", cid, "facture-2.pdf", "-o", "-").raw.stdout_bytes == PDF_2
    assert result.stderr == ""


def test_a_conversation_with_one_attachment_needs_no_name(adesk):
    [rec] = adesk.json("ingest", "jsonl", "-", input=(_line("solo", [_att("only.bin", PNG)]).replace(
        '"t-9"', '"t-solo"') + "\n").encode())
    assert adesk.ok("attachment", "save", rec["id"], "-o", "-").raw.stdout_bytes == PNG


@pytest.mark.parametrize("args, code, message", [
    (["save", "{cid}", "--all", "-o", "-"], 2, "not --all"),
    (["save", "{cid}", "photo.png", "--all"], 2, "not both"),
    (["save", "{cid}"], 2, "name one or save them all (--all)"),
    (["save", "{cid}", "facture.pdf", "--all", "-o", "-"], 2, "not --all"),
    (["save", "{cid}", "nope.txt"], 3, "no attachment named 'nope.txt'"),
    (["save", "{cid}", "nope.txt", "-o", "-"], 3, "no attachment named"),
    (["save", "99999", "--all"], 3, "conversation not found: #99999"),
    (["list", "99999"], 3, "conversation not found: #99999"),
    (["list", "abc"], 2, "invalid conversation id"),
    (["save", "{cid}", "--all", "-o", "missing-dir"], 2, "is not a directory"),
])
def test_errors_have_their_exit_code_and_change_nothing(adesk, cid, args, code, message):
    before = sorted(os.listdir("."))
    result = adesk.run("attachment", *[a.format(cid=cid) for a in args], fmt="json")
    assert result.exit_code == code, result
    assert message in result.stderr
    assert result.stdout == ""
    assert sorted(os.listdir(".")) == before


def test_a_name_shared_by_several_is_refused_for_stdout_but_saves_all_to_a_directory(adesk, cid, tmp_path):
    from sqlalchemy import text

    with adesk.engine.begin() as conn:
        conn.execute(text("UPDATE attachments SET filename = 'dir/facture.pdf' WHERE filename = 'facture.pdf'"))
    assert [r["file"] for r in adesk.json("attachment", "list", cid)] == ["facture.pdf", "photo.png", "facture-2.pdf"]
    result = adesk.run("attachment", "save", cid, "dir/facture.pdf", "-o", "-")
    assert result.exit_code == 2 and "facture.pdf, facture-2.pdf" in result.stderr
    assert result.raw.stdout_bytes == b""
    saved = adesk.json("attachment", "save", cid, "dir/facture.pdf", "-o", tmp_path)
    assert [r["path"] for r in saved] == [str(tmp_path / "facture.pdf"), str(tmp_path / "facture-2.pdf")]


def test_existing_file_is_refused_unless_force(adesk, cid, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "photo.png").write_bytes(b"mine")
    result = adesk.run("attachment", "save", cid, "--all", "-o", out)
    assert result.exit_code == 4 and "photo.png" in result.stderr and "--force" in result.stderr
    assert os.listdir(out) == ["photo.png"] and (out / "photo.png").read_bytes() == b"mine"
    adesk.ok("attachment", "save", cid, "--all", "-o", out, "--force")
    assert (out / "photo.png").read_bytes() == PNG
    assert sorted(os.listdir(out)) == ["facture-2.pdf", "facture.pdf", "photo.png"]


def test_missing_or_damaged_content_is_not_found_and_nothing_is_written(adesk, cid, tmp_path):
    digest = hashlib.sha256(PNG).hexdigest()
    stored = tmp_path / "data" / "deskctl" / "attachments" / digest[:2] / digest
    out = tmp_path / "out"
    out.mkdir()
    stored.write_bytes(PNG[:-1] + b"!")
    result = adesk.run("attachment", "save", cid, "--all", "-o", out)
    assert result.exit_code == 3 and "damaged" in result.stderr
    dash = adesk.run("attachment", "save", cid, "photo.png", "-o", "-")
    assert dash.exit_code == 3 and dash.raw.stdout_bytes == b""
    stored.unlink()
    result = adesk.run("attachment", "save", cid, "--all", "-o", out)
    assert result.exit_code == 3 and "missing" in result.stderr and str(stored) in result.stderr
    assert os.listdir(out) == []


def test_hostile_stored_names_are_saved_as_plain_files_inside_the_directory(adesk, cid, tmp_path):
    from sqlalchemy import text

    hostile = ["../../escape.txt", ".bashrc", "..", "a\x1b[31mred.txt", "invoice\u202egpj.exe", "C:\\temp\\win.txt",
               "/etc/passwd", "", "   ", "Photo.PNG"]
    [first] = _stored_message_ids(adesk, cid)[:1]
    with adesk.engine.begin() as conn:
        for name in hostile:
            conn.execute(text("INSERT INTO attachments (message_id, filename, content_type, size, sha256) "
                              "VALUES (:m, :f, 'text/plain', :s, :h)"),
                         {"m": first, "f": name, "s": len(PNG), "h": hashlib.sha256(PNG).hexdigest()})
    out = tmp_path / "deep" / "out"
    out.mkdir(parents=True)
    saved = adesk.json("attachment", "save", cid, "--all", "-o", out)
    names = [os.path.basename(r["path"]) for r in saved]
    assert sorted(os.listdir(out)) == sorted(names)
    assert len(set(n.casefold() for n in names)) == len(names)
    for record, name in zip(saved, names, strict=True):
        assert os.path.dirname(record["path"]) == str(out)
        assert not name.startswith(".") and "/" not in name and "\\" not in name
        assert all(ch.isprintable() for ch in name)
    assert sorted(os.listdir(tmp_path / "deep")) == ["out"]
    assert "escape.txt" in names and "bashrc" in names and "passwd" in names and "win.txt" in names
    assert "a_[31mred.txt" in names and "invoice_gpj.exe" in names
    # photo.png was first: the later "Photo.PNG" differs only in case and gets its own name.
    assert "Photo-2.PNG" in names


@pytest.mark.parametrize("name, expected", [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "passwd"),
    ("..\\..\\boot.ini", "boot.ini"),
    ("..", "fallback"),
    (".", "fallback"),
    ("...hidden", "hidden"),
    ("trailing. . ", "trailing"),
    ("nul\x00byte", "nul_byte"),
    ("tab\there", "tab_here"),
    ("zero\u200bwidth", "zero_width"),
    ("dir/", "fallback"),
    (None, "fallback"),
    ("é" * 300 + ".txt", "é" * 98 + ".txt"),
])
def test_safe_name(name, expected):
    assert safe_name(name, "fallback") == expected


def test_unknown_user_may_not_read(adesk, cid):
    result = adesk.run("attachment", "list", cid, as_="nobody")
    assert result.exit_code == 5 and result.stdout == ""


def test_a_conversation_without_attachments(adesk):
    from tests.factories import make_conversation

    plain = make_conversation(adesk)
    listed = adesk.run("attachment", "list", plain, fmt="json")
    assert listed.exit_code == 0 and listed.json() == [] and "has no attachments" in listed.stderr
    everything = adesk.run("attachment", "save", plain, "--all", fmt="json")
    assert everything.exit_code == 0 and everything.stdout == "" and "has no attachments" in everything.stderr
    assert adesk.run("attachment", "save", plain).exit_code == 3
    assert adesk.run("attachment", "save", plain, "x.pdf", "-o", "-").exit_code == 3


def _unwritable_directory() -> str:
    """A directory even root cannot create files in (sysfs), where there is one."""
    import tempfile

    try:
        fd, name = tempfile.mkstemp(dir="/sys")
    except PermissionError:
        return "/sys"
    except OSError:
        pass
    else:
        os.close(fd)
        os.unlink(name)
    pytest.skip("no directory that refuses new files here")


def test_a_directory_that_refuses_files_is_a_usage_error(adesk, cid):
    where = _unwritable_directory()
    result = adesk.run("attachment", "save", cid, "--all", "-o", where)
    assert result.exit_code == 2, result
    assert f"cannot write in {where}" in result.stderr and result.stdout == ""
