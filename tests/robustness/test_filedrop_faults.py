"""fault suite, file drop

Each case names the guarantee it checks (test id or docstring): links out of the drop,
timestamps that are not ISO 8601, quarantine line numbers after quoted newlines, NUL
bytes and UTF-16 files. Every case runs `load_drop` against a fresh database.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import psycopg
import pytest

from b2b_pipeline.filedrop.loader import LoadReport, load_drop

pytestmark = pytest.mark.integration

ACCOUNT_HEADER = "account_id,name,created_at,updated_at"
GOOD_TS = "2026-03-10T02:00:00Z"
TYPING_MACROS = Path(__file__).resolve().parents[2] / "dbt_project" / "macros" / "typing.sql"


def write(root: Path, relpath: str, data: str | bytes) -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if relpath.endswith(".gz"):
        raw = gzip.compress(raw, mtime=0)
    path.write_bytes(raw)
    return path


def rows(dsn: str, query: str, *params: object) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params or None).fetchall()  # type: ignore[arg-type]


def the(report: LoadReport, relpath: str):
    return next(f for f in report.files if f.file == relpath)


def accounts_csv(*created_at: str) -> str:
    return f"{ACCOUNT_HEADER}\n" + "".join(f"A{i},Acme {i},{ts},{GOOD_TS}\n" for i, ts in enumerate(created_at))


def b2b_timestamp_sql(column: str) -> str:
    """The dbt staging macro `b2b_timestamp` rendered for `column` (what base models type a timestamp by)."""
    module = jinja2.Environment().from_string(TYPING_MACROS.read_text(encoding="utf-8")).module
    return str(module.b2b_timestamp(column))  # type: ignore[attr-defined]


# ---------------------------------------------------------------- timestamps (item 2)

NOT_ISO = [
    pytest.param("2026-03-10T02:00:00 MSK", id="zone abbreviation MSK -> quarantined, reason names created_at"),
    pytest.param("2026-03-10T02:00:00 Europe/Moscow", id="zone name Europe/Moscow -> quarantined"),
    pytest.param("2026-03-10 02:00:00 PST8PDT", id="POSIX zone PST8PDT -> quarantined"),
    pytest.param("2026-03-10T02:00:00 UTC", id="UTC as a word -> quarantined"),
    pytest.param("2026-03-10T02:00:00+3", id="one-digit offset +3 -> quarantined"),
    pytest.param("2026-03-10T02:00:00+3:00", id="one-digit offset hour +3:00 -> quarantined"),
    pytest.param("2026-03-10T02:00:00 +03:00", id="space before the offset -> quarantined"),
    pytest.param("2026-03-10T2:00:00+03:00", id="one-digit hour -> quarantined (dbt would drop its offset)"),
]

VALID = [
    pytest.param("2026-03-10T02:00:00+03:00", "2026-03-09T23:00:00", id="offset +03:00 valid -> 23:00 UTC"),
    pytest.param("2026-03-10T02:00:00Z", "2026-03-10T02:00:00", id="Z valid -> that UTC instant"),
    pytest.param("2026-03-10T02:00:00+0300", "2026-03-09T23:00:00", id="offset +0300 valid -> 23:00 UTC"),
    pytest.param("2026-03-10T02:00:00-05", "2026-03-10T07:00:00", id="offset -05 (ISO hh form) valid -> 07:00 UTC"),
    pytest.param("2026-03-10T02:00:00", "2026-03-10T02:00:00", id="no offset valid = UTC, lands at 02:00 UTC"),
    pytest.param("2026-03-10 02:00:00.250+03:00", "2026-03-09T23:00:00.250", id="space and fraction valid"),
    pytest.param("2026-03-10", "2026-03-10T00:00:00", id="date only valid (as before) -> midnight UTC"),
]


@pytest.mark.parametrize("value", NOT_ISO)
def test_timestamp_not_iso_8601_is_quarantined(warehouse: str, tmp_path: Path, value: str) -> None:
    write(tmp_path, "crm/accounts.csv", accounts_csv(GOOD_TS, value))
    report = load_drop(warehouse, tmp_path)
    f = the(report, "crm/accounts.csv")
    assert (f.status, f.rows_loaded, f.rows_quarantined) == ("loaded", 1, 1)
    [(line, entity, reason)] = rows(warehouse, "select line, entity, reason from raw_files.quarantine")
    assert (line, entity) == (3, "accounts")
    assert reason.startswith("created_at: not an ISO 8601 timestamp") and reason.endswith(f" ({value})")
    if "MSK" in value or "/" in value or "PST" in value or "+3" in value:
        assert "its zone is not an offset Z, ±hh:mm, ±hhmm or ±hh" in reason


@pytest.mark.parametrize(("value", "utc"), VALID)
def test_timestamp_iso_8601_loads_at_its_utc_instant(warehouse: str, tmp_path: Path, value: str, utc: str) -> None:
    write(tmp_path, "crm/accounts.csv", accounts_csv(value))
    report = load_drop(warehouse, tmp_path)
    assert (report.rows_loaded, report.rows_quarantined) == (1, 0)
    typed = b2b_timestamp_sql("created_at")
    with psycopg.connect(warehouse) as conn:
        conn.execute("set time zone 'Asia/Tokyo'")
        got = conn.execute(f"select {typed} from raw_files.accounts").fetchall()
    assert got == [(datetime.fromisoformat(utc).replace(tzinfo=UTC),)]


def _csv_fast(value: str) -> tuple[str, str]:
    return "crm/accounts.csv", accounts_csv(GOOD_TS, value)


def _csv_extra(value: str) -> tuple[str, str]:
    text = f"{ACCOUNT_HEADER},crm_note\nA0,Acme,{GOOD_TS},{GOOD_TS},x\nA1,Acme,{value},{GOOD_TS},y\n"
    return "crm/accounts.csv", text


def _csv_ragged(value: str) -> tuple[str, str]:
    text = accounts_csv(GOOD_TS, value) + "A9,ragged\n"
    return "crm/accounts.csv", text


def _gzip(value: str) -> tuple[str, str]:
    return "crm/accounts.csv.gz", accounts_csv(GOOD_TS, value)


def _jsonl(value: str, *, number: bool = False) -> str:
    good = {"account_id": "A0", "name": "Acme", "created_at": GOOD_TS, "updated_at": GOOD_TS}
    bad = dict(good, account_id="A1", created_at=value)
    if number:  # not a string: the file goes by the SQL path
        good["employee_count"] = 5  # type: ignore[assignment]
    return json.dumps(good) + "\n" + json.dumps(bad) + "\n"


PATHS = [
    pytest.param(_csv_fast, 1, id="CSV COPY path: MSK quarantined"),
    pytest.param(_csv_extra, 1, id="CSV with extra columns: MSK quarantined"),
    pytest.param(_csv_ragged, 2, id="ragged CSV: MSK quarantined beside the ragged row"),
    pytest.param(_gzip, 1, id="gzip CSV: MSK quarantined"),
    pytest.param(lambda v: ("crm/accounts.jsonl", _jsonl(v)), 1, id="JSON Lines fast path: MSK quarantined"),
    pytest.param(
        lambda v: ("crm/accounts.jsonl", _jsonl(v, number=True)), 1, id="JSON Lines SQL path: MSK quarantined"
    ),
    pytest.param(
        lambda v: ("crm/accounts.jsonl", _jsonl(v) + "{not json\n"), 2, id="JSON Lines checked path: MSK quarantined"
    ),
]


@pytest.mark.parametrize(("make", "quarantined"), PATHS)
def test_zone_name_quarantined_on_every_load_path(warehouse: str, tmp_path: Path, make, quarantined: int) -> None:
    relpath, text = make("2026-03-10T02:00:00 MSK")
    write(tmp_path, relpath, text)
    report = load_drop(warehouse, tmp_path)
    f = the(report, relpath)
    assert (f.status, f.rows_loaded, f.rows_quarantined) == ("loaded", 1, quarantined)
    assert rows(warehouse, "select account_id from raw_files.accounts") == [("A0",)]
    reasons = [r for (r,) in rows(warehouse, "select reason from raw_files.quarantine order by line")]
    assert [r for r in reasons if r.startswith("created_at: not an ISO 8601 timestamp, its zone")] == [
        "created_at: not an ISO 8601 timestamp, its zone is not an offset Z, ±hh:mm, ±hhmm or ±hh (none: UTC) "
        "(2026-03-10T02:00:00 MSK)"
    ]


# ---------------------------------------------------------------- links out of the drop (item 1)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the drop (not inside it) holding an accounts file and a dated folder of one."""
    out = tmp_path / "elsewhere"
    write(out, "accounts.csv", accounts_csv(GOOD_TS))
    write(out, "crm/accounts.csv", accounts_csv(GOOD_TS))
    write(out, "2026-11-26/accounts.csv", accounts_csv("2026-11-26T00:00:00Z"))
    return out


def _assert_link_refused(warehouse: str, report: LoadReport, link: str, target: Path) -> None:
    f = the(report, link)
    assert f.status == "refused"
    assert link in f.reason and str(target.resolve()) in f.reason and "outside the drop" in f.reason
    assert rows(warehouse, "select file, reason from raw_files.file_refusals") == [(link, f.reason)]
    assert rows(warehouse, "select count(*) from raw_files.accounts") == [(0,)]


def test_symlinked_file_out_of_the_drop_is_refused(warehouse: str, tmp_path: Path, outside: Path) -> None:
    """crm/accounts.csv -> a file outside the drop: refused, the reason names link and target; nothing loads."""
    drop = tmp_path / "drop"
    (drop / "crm").mkdir(parents=True)
    (drop / "crm/accounts.csv").symlink_to(outside / "accounts.csv")
    report = load_drop(warehouse, drop)
    _assert_link_refused(warehouse, report, "crm/accounts.csv", outside / "accounts.csv")


def test_symlinked_dated_folder_out_of_the_drop_is_refused(warehouse: str, tmp_path: Path, outside: Path) -> None:
    """crm/2026-11-26 -> a folder outside the drop: the folder is refused, none of its files load."""
    drop = tmp_path / "drop"
    (drop / "crm").mkdir(parents=True)
    (drop / "crm/2026-11-26").symlink_to(outside / "2026-11-26", target_is_directory=True)
    report = load_drop(warehouse, drop)
    _assert_link_refused(warehouse, report, "crm/2026-11-26", outside / "2026-11-26")


def test_symlinked_system_folder_out_of_the_drop_is_refused(warehouse: str, tmp_path: Path, outside: Path) -> None:
    """crm/ itself -> a folder outside the drop: crm/ is refused, none of its files load."""
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "crm").symlink_to(outside / "crm", target_is_directory=True)
    report = load_drop(warehouse, drop)
    _assert_link_refused(warehouse, report, "crm", outside / "crm")


def test_cli_load_exits_1_and_prints_a_link_out(warehouse: str, tmp_path: Path, outside: Path) -> None:
    """`b2b load` of a drop with a link out: exit 1, the refusal printed with link and target."""
    drop = tmp_path / "drop"
    (drop / "crm").mkdir(parents=True)
    (drop / "crm/accounts.csv").symlink_to(outside / "accounts.csv")
    b2b = Path(sys.executable).parent / "b2b"
    env = dict(os.environ, B2B_HOME=str(tmp_path / "home"), COLUMNS="400")
    done = subprocess.run([b2b, "load", "--source-dir", drop], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 1, done.stderr
    assert "refused" in done.stderr and "crm/accounts.csv" in done.stderr and "outside the drop" in done.stderr


def test_links_inside_the_drop_load(warehouse: str, tmp_path: Path) -> None:
    """A file link and a dated-folder link whose targets lie inside the drop load as usual, no refusal."""
    drop = tmp_path / "drop"
    write(drop, "archive/accounts.csv", accounts_csv(GOOD_TS))
    write(drop, "archive/2026-11-26/accounts.csv", accounts_csv(GOOD_TS, "2026-03-11T00:00:00Z"))
    (drop / "crm").mkdir()
    (drop / "crm/accounts.csv").symlink_to(drop / "archive/accounts.csv")
    (drop / "crm/2026-11-26").symlink_to(Path("../archive/2026-11-26"), target_is_directory=True)
    report = load_drop(warehouse, drop)
    assert report.refusals == []
    assert [(f.file, f.status, f.rows_loaded) for f in report.files] == [
        ("crm/accounts.csv", "loaded", 1),
        ("crm/2026-11-26/accounts.csv", "loaded", 2),
    ]


def test_dangling_link_is_refused_clearly(warehouse: str, tmp_path: Path) -> None:
    """crm/accounts.csv -> a missing file: refused as a dangling link (no crash), the other files load."""
    drop = tmp_path / "drop"
    write(drop, "crm/users.csv", "user_id,full_name,email,team,is_active,updated_at\n")
    (drop / "crm/accounts.csv").symlink_to(drop / "crm/gone.csv")
    report = load_drop(warehouse, drop)
    f = the(report, "crm/accounts.csv")
    assert f.status == "refused" and "dangling" in f.reason and "gone.csv" in f.reason
    assert the(report, "crm/users.csv").status == "loaded"


def test_link_loop_is_refused_clearly(warehouse: str, tmp_path: Path) -> None:
    """crm/accounts.csv -> crm/loop.csv -> crm/accounts.csv: refused as a link loop, no crash."""
    drop = tmp_path / "drop"
    (drop / "crm").mkdir(parents=True)
    (drop / "crm/accounts.csv").symlink_to(drop / "crm/loop.csv")
    (drop / "crm/loop.csv").symlink_to(drop / "crm/accounts.csv")
    report = load_drop(warehouse, drop)
    f = the(report, "crm/accounts.csv")
    assert f.status == "refused" and "loop" in f.reason


def test_setting_allows_links_out(
    warehouse: str, tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B2B_DROP_ALLOW_EXTERNAL_LINKS=true: a file link and a dated-folder link out of the drop load."""
    monkeypatch.setenv("B2B_DROP_ALLOW_EXTERNAL_LINKS", "true")
    drop = tmp_path / "drop"
    (drop / "crm").mkdir(parents=True)
    (drop / "crm/accounts.csv").symlink_to(outside / "accounts.csv")
    (drop / "crm/2026-11-26").symlink_to(outside / "2026-11-26", target_is_directory=True)
    report = load_drop(warehouse, drop)
    assert report.refusals == []
    assert report.rows_loaded == 2


# ---------------------------------------------------------------- line numbers (item 3)

MULTILINE_ACCOUNTS = (
    f"{ACCOUNT_HEADER}\n"  # line 1
    f'A1,"Acme\nHolding\nGroup",{GOOD_TS},{GOOD_TS}\n'  # lines 2-4
    f"A2,Beta,{GOOD_TS},{GOOD_TS}\n"  # line 5
    f'A3,"Gamma\r\nLtd",{GOOD_TS},{GOOD_TS}\n'  # lines 6-7
    f"A4,Delta,not a time,{GOOD_TS}\n"  # line 8: bad
    f"A5,Epsilon,{GOOD_TS},{GOOD_TS}\n"  # line 9
)
MULTILINE_LINES = [("A1", 2), ("A2", 5), ("A3", 6), ("A5", 9)]


@pytest.mark.parametrize(
    ("relpath", "text"),
    [
        pytest.param("crm/accounts.csv", MULTILINE_ACCOUNTS, id="CSV COPY path: bad row on physical line 8"),
        pytest.param("crm/accounts.csv.gz", MULTILINE_ACCOUNTS, id="gzip CSV: bad row on physical line 8"),
        pytest.param(
            "crm/accounts.csv",
            MULTILINE_ACCOUNTS.replace(ACCOUNT_HEADER, ACCOUNT_HEADER + ",x").replace(f"{GOOD_TS}\n", f"{GOOD_TS},\n"),
            id="CSV with extra columns: bad row on physical line 8",
        ),
        pytest.param(
            "crm/accounts.csv", MULTILINE_ACCOUNTS + "A6,ragged\n", id="ragged CSV: bad row on physical line 8"
        ),
    ],
)
def test_quarantine_line_is_the_physical_line_after_quoted_newlines(
    warehouse: str, tmp_path: Path, relpath: str, text: str
) -> None:
    write(tmp_path, relpath, text)
    load_drop(warehouse, tmp_path)
    got = rows(warehouse, "select line, reason from raw_files.quarantine where reason like 'created_at%'")
    assert got == [(8, "created_at: not an ISO 8601 timestamp (not a time)")]
    assert rows(warehouse, "select account_id, _line from raw_files.accounts order by _line") == MULTILINE_LINES


def test_jsonl_quarantine_line_counts_blank_lines(warehouse: str, tmp_path: Path) -> None:
    """JSON Lines: one object a line; a bad object after blank lines is reported at its physical line (5)."""
    good = {"account_id": "A1", "name": "Acme\nHolding", "created_at": GOOD_TS, "updated_at": GOOD_TS}
    bad = dict(good, account_id="A2", created_at="yesterday")
    text = json.dumps(good) + "\n\n\n" + json.dumps(good | {"account_id": "A3"}) + "\n" + json.dumps(bad) + "\n"
    write(tmp_path, "crm/accounts.jsonl", text)
    load_drop(warehouse, tmp_path)
    assert rows(warehouse, "select line from raw_files.quarantine") == [(5,)]
    assert rows(warehouse, "select account_id, _line from raw_files.accounts order by 2") == [("A1", 1), ("A3", 4)]


# ---------------------------------------------------------------- NUL bytes and UTF-16 (item 4)


@pytest.mark.parametrize(
    "relpath", [pytest.param("crm/accounts.csv", id="CSV"), pytest.param("crm/accounts.jsonl", id="JSON Lines")]
)
def test_nul_byte_is_named_not_blamed_on_windows_1251(warehouse: str, tmp_path: Path, relpath: str) -> None:
    """A NUL byte on line 3: refused, the reason names the NUL byte, its line and byte offset, not Windows-1251."""
    if relpath.endswith(".csv"):
        text = accounts_csv(GOOD_TS) + "A1,Ac\x00me," + GOOD_TS + "," + GOOD_TS + "\n"
    else:
        line = json.dumps({"account_id": "A0", "name": "Acme", "created_at": GOOD_TS, "updated_at": GOOD_TS})
        text = line + "\n" + line + "\n" + '{"account_id": "A1", "name": "Ac\x00me"}\n'
    write(tmp_path, relpath, text)
    offset = text.encode().index(b"\x00")
    report = load_drop(warehouse, tmp_path)
    f = the(report, relpath)
    assert f.status == "refused"
    assert "NUL byte (0x00)" in f.reason and "line 3" in f.reason and f"byte offset {offset}" in f.reason
    assert "1251" not in f.reason


def test_windows_1251_keeps_its_hint(warehouse: str, tmp_path: Path) -> None:
    """Cyrillic in Windows-1251: refused with the Windows-1251 hint, as before."""
    write(tmp_path, "crm/accounts.csv", (accounts_csv(GOOD_TS) + "A1,Ромашка,,\n").encode("cp1251"))
    f = the(load_drop(warehouse, tmp_path), "crm/accounts.csv")
    assert f.status == "refused" and "Windows-1251" in f.reason and "NUL" not in f.reason


@pytest.mark.parametrize(
    ("relpath", "encoding"),
    [
        pytest.param("crm/accounts.csv", "utf-16", id="CSV UTF-16 with BOM -> refused as UTF-16"),
        pytest.param("crm/accounts.jsonl", "utf-16", id="JSON Lines UTF-16 with BOM -> refused as UTF-16"),
        pytest.param("crm/accounts.csv", "utf-16-le", id="CSV UTF-16 without BOM -> refused naming the NUL bytes"),
    ],
)
def test_utf16_file_is_refused_clearly(warehouse: str, tmp_path: Path, relpath: str, encoding: str) -> None:
    if relpath.endswith(".csv"):
        text = accounts_csv(GOOD_TS)
    else:
        text = json.dumps({"account_id": "A0", "name": "Acme", "created_at": GOOD_TS, "updated_at": GOOD_TS}) + "\n"
    write(tmp_path, relpath, text.encode(encoding))
    f = the(load_drop(warehouse, tmp_path), relpath)
    assert f.status == "refused"
    assert "UTF-16" in f.reason and "1251" not in f.reason
    if encoding == "utf-16":
        assert "byte-order mark" in f.reason
