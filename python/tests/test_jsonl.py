"""JSON Lines: field= served zero-copy, fields= columns, bad records, JSON in SQL, Polars and DuckDB."""

from __future__ import annotations

import json
import random
import struct
import subprocess
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pytest

import mmap_batcher as mmb

REPO = Path(__file__).resolve().parents[2]
CLI = str(REPO / "target" / "debug" / "mmap-batcher")

WORDS = ["alpha", "béta", "gamma", "δέλτα", "tab\there", 'say "hi"', "back\\slash", "emoji 😀", "line\nbreak", "plain"]


def record(i: int, rng: random.Random) -> dict:
    """A real-shaped record: a text of a few words to a few KB, with escapes on some."""
    text = " ".join(rng.choice(WORDS[-1:] * 6 + WORDS) for _ in range(rng.randint(3, 400)))
    rec = {"id": i, "text": f"doc {i}: {text}", "meta": {"lang": rng.choice(["en", "fr", "de"]), "score": i / 7, "tags": ["a", "b"][: i % 3]}}
    if i % 5 == 0:
        rec["meta"]["url"] = f"https://example.org/{i}"
    return rec


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[str, list[dict]]:
    rng = random.Random(7)
    records = [record(i, rng) for i in range(600)]
    path = tmp_path / "docs.jsonl"
    # Escapes as json.dumps writes them (ASCII only) on even records, raw UTF-8 on odd ones.
    path.write_text("".join(json.dumps(r, ensure_ascii=i % 2 == 0) + "\n" for i, r in enumerate(records)), encoding="utf-8")
    return str(path), records


def views(arr: pa.Array) -> list[tuple[int, int, int]]:
    """(length, buffer index, offset) of each view of a StringView array (long strings only)."""
    raw = arr.buffers()[1].to_pybytes()[arr.offset * 16 : (arr.offset + len(arr)) * 16]
    out = []
    for k in range(len(arr)):
        length, _prefix, buf, off = struct.unpack_from("<iIii", raw, 16 * k)
        out.append((length, buf, off) if length > 12 else (length, -1, -1))
    return out


def test_the_field_is_each_records_string_in_every_epoch(corpus):
    path, records = corpus
    b = mmb.MmapBatcher(path, field="text", batch_size=64, seed=3, ignore_leftovers=False, index_cache=False)
    texts = sorted(r["text"].encode() for r in records)
    for epoch in range(2):
        served = [line for batch in b.epoch(epoch).batches() for line in batch]
        assert sorted(served) == texts
    arrow = [v for ab in b.epoch(0).record_batches() for v in pa.record_batch(ab).column("line").to_pylist()]
    assert sorted(arrow) == sorted(r["text"] for r in records)


def test_fields_without_escapes_are_views_into_the_map(corpus):
    path, records = corpus
    b = mmb.MmapBatcher(path, field="text", fields=["meta.url"], batch_size=600, shuffle=False, ignore_leftovers=False, index_cache=False)
    lo, hi = b.map_address_range()
    (ab,) = list(b.epoch(0).record_batches())
    rb = pa.record_batch(ab)
    for column in ("line", "meta.url"):
        arr = rb.column(column)
        data = arr.buffers()[2:]
        in_map = out_of_map = 0
        for row, (length, buf, off) in enumerate(views(arr)):
            if buf < 0:
                continue
            address = data[buf].address + off
            raw = json.dumps(records[row]["text"] if column == "line" else records[row]["meta"].get("url"), ensure_ascii=row % 2 == 0)
            if "\\" in raw:
                assert not lo <= address < hi, (column, row)
                out_of_map += 1
            else:
                assert lo <= address < hi and address + length <= hi, (column, row)
                in_map += 1
        assert in_map > 0
        assert (out_of_map > 0) == (column == "line")
    urls = rb.column("meta.url").to_pylist()
    assert urls == [r["meta"].get("url") for r in records]


def test_fields_serve_strings_json_text_and_nulls(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text(
        '{"a.b": "dotted", "meta": {"lang": "en", "n": 3, "ok": true}, "tags": [1, {"x": "y"}]}\n{"meta": null}\n{"meta": {"lang": "caf\\u00e9"}}\n'
    )
    b = mmb.MmapBatcher(str(p), fields=["meta.lang", "meta.n", "meta.ok", "/a.b", "tags", "meta"], batch_size=3, shuffle=False, index_cache=False)
    (ab,) = list(b.epoch(0).record_batches())
    got = pa.record_batch(ab).to_pydict()
    assert got["line"][1] == '{"meta": null}'  # without field= the line is the line
    assert got["meta.lang"] == ["en", None, "café"]
    assert got["meta.n"] == ["3", None, None]
    assert got["meta.ok"] == ["true", None, None]
    assert got["/a.b"] == ["dotted", None, None]
    assert json.loads(got["tags"][0]) == [1, {"x": "y"}]
    assert json.loads(got["meta"][0]) == {"lang": "en", "n": 3, "ok": True} and got["meta"][1] is None
    assert b.columns[-6:] == ["meta.lang", "meta.n", "meta.ok", "/a.b", "tags", "meta"]


def bad_corpus(tmp_path: Path) -> str:
    lines = []
    for i in range(100):
        if i % 10 == 3:
            lines.append(["not json", '{"id": 1}', '{"text": 5}', '{"text": "cut', '{"text": null}'][i // 10 % 5])
        else:
            lines.append(json.dumps({"text": f"record {i}"}))
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return str(p)


def test_a_bad_record_is_an_error_naming_file_line_and_byte(tmp_path):
    path = bad_corpus(tmp_path)
    b = mmb.MmapBatcher(path, field="text", batch_size=10, shuffle=False, index_cache=False)
    with pytest.raises(mmb.BadRecordError) as e:
        list(b)
    assert e.value.line_number == 4 and e.value.path == path
    assert e.value.byte_offset == sum(len(json.dumps({"text": f"record {i}"})) + 1 for i in range(3))
    assert "bad.jsonl:4" in str(e.value) and "not a JSON object" in str(e.value)
    epoch = b.epoch(0)
    with pytest.raises(mmb.BadRecordError, match="has no such field"):
        epoch.batch(1)
    with pytest.raises(mmb.BadRecordError, match="is not a string"):
        epoch.batch(2)


def test_skipped_records_leave_only_their_own_batch(tmp_path):
    path = bad_corpus(tmp_path)
    b = mmb.MmapBatcher(path, field="text", on_bad_record="skip", batch_size=10, seed=5, index_cache=False)
    batches = list(b.epoch(0).batches())
    assert len(batches) == 10
    served = [line for batch in batches for line in batch]
    assert sorted(served) == sorted(f"record {i}".encode() for i in range(100) if i % 10 != 3)
    # Random access and a resumed run see the same batches.
    for k in (0, 4, 9):
        assert [v.encode() for v in pa.record_batch(b.epoch(0).batch(k)).column("line").to_pylist()] == batches[k]
    it = iter(b)
    first = [next(it) for _ in range(3)]
    state = b.state_dict()
    again = mmb.MmapBatcher(path, field="text", on_bad_record="skip", batch_size=10, seed=5, index_cache=False)
    again.load_state_dict(state)
    assert first + list(again) == batches
    # The Arrow path drops the same rows.
    rows = [pa.record_batch(ab).num_rows for ab in b.epoch(0).record_batches()]
    assert rows == [len(x) for x in batches]


def test_null_keeps_the_row(tmp_path):
    path = bad_corpus(tmp_path)
    b = mmb.MmapBatcher(path, field="text", on_bad_record="null", batch_size=100, shuffle=False, index_cache=False, output="arrow")
    (ab,) = list(b)
    col = pa.record_batch(ab).column("line")
    assert col.null_count == 10 and col.type == pa.string_view()
    assert [v is None for v in col.to_pylist()] == [i % 10 == 3 for i in range(100)]
    (lines,) = list(mmb.MmapBatcher(path, field="text", on_bad_record="null", batch_size=100, shuffle=False, index_cache=False))
    assert lines[3] is None and lines[4] == b"record 4"


def test_options_are_checked(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"text": "x"}\n')
    with pytest.raises(mmb.OptionError, match="binary"):
        mmb.MmapBatcher(str(p), field="text", binary=True)
    with pytest.raises(mmb.OptionError, match="on_bad_record"):
        mmb.MmapBatcher(str(p), on_bad_record="skip")
    with pytest.raises(mmb.OptionError, match="on_bad_record must be"):
        mmb.MmapBatcher(str(p), field="text", on_bad_record="drop")
    with pytest.raises(mmb.OptionError, match="a column of its own"):
        mmb.MmapBatcher(str(p), fields=["epoch"])
    with pytest.raises(mmb.OptionError, match="empty key"):
        mmb.MmapBatcher(str(p), field="meta..x")


def test_pickled_batchers_keep_their_fields(corpus):
    import pickle

    path, _ = corpus
    b = mmb.MmapBatcher(path, field="text", fields=["meta.lang"], on_bad_record="skip", batch_size=50, seed=2, index_cache=False)
    c = pickle.loads(pickle.dumps(b))
    assert list(c.epoch(1).batches()) == list(b.epoch(1).batches())
    assert c.columns == b.columns


def test_polars_decodes_the_json_field_and_groups_by_a_nested_one(corpus):
    path, records = corpus
    lf = mmb.scan_lines(path, field="text", fields=["meta"], seed=1)
    df = lf.select(pl.col("line"), pl.col("meta").str.json_decode(pl.Struct({"lang": pl.String, "score": pl.Float64}))).collect()
    assert df.schema["line"] == pl.String and df.height == len(records)
    counts = df.group_by(pl.col("meta").struct.field("lang")).len().sort("lang")
    expected = pl.DataFrame({"lang": [r["meta"]["lang"] for r in records]}).group_by("lang").len().sort("lang")
    assert counts.to_dicts() == expected.to_dicts()
    assert sorted(df["line"].to_list()) == sorted(r["text"] for r in records)


def test_duckdb_json_extract_over_the_arrow_stream(corpus):
    path, records = corpus
    epoch = mmb.MmapBatcher(path, batch_size=64, seed=4, index_cache=False).epoch(0)
    reader = pa.RecordBatchReader.from_stream(epoch)
    rows = duckdb.sql("SELECT json_extract_string(CAST(line AS VARCHAR), '$.meta.lang') AS lang, count(*) FROM reader GROUP BY lang ORDER BY lang").fetchall()
    want = sorted(
        (lang, n) for lang, n in __import__("collections").Counter(r["meta"]["lang"] for r in records[: 64 * (len(records) // 64)]).items()
    )
    assert sum(n for _, n in rows) == 64 * (len(records) // 64)
    assert {lang for lang, _ in rows} == {lang for lang, _ in want}


def cli(*args: str) -> str:
    return subprocess.run([CLI, *args], capture_output=True, text=True, check=True).stdout


def test_sql_json_functions_group_by_a_field_over_a_glob(tmp_path, corpus):
    path, records = corpus
    d = tmp_path / "parts"
    d.mkdir()
    lines = Path(path).read_text().splitlines(keepends=True)
    for k in range(3):
        (d / f"part{k}.jsonl").write_text("".join(lines[k::3]))
    out = cli(
        "sql", "--format", "csv", str(d / "*.jsonl"),
        "SELECT json_get_str(line, 'meta', 'lang') AS lang, count(*) AS n, sum(json_get_int(line, 'id')) AS ids FROM lines GROUP BY lang ORDER BY lang",
    )
    got = [row.split(",") for row in out.split()[1:]]
    langs = sorted({r["meta"]["lang"] for r in records})
    assert [g[0] for g in got] == langs
    for lang, n, ids in got:
        mine = [r for r in records if r["meta"]["lang"] == lang]
        assert (int(n), int(ids)) == (len(mine), sum(r["id"] for r in mine))
    # A nested filter through the operators, and a field served as the line.
    out = cli("sql", "--format", "csv", "--field", "text", "--fields", "meta.url", path,
              "SELECT count(*) AS n FROM lines WHERE \"meta.url\" IS NOT NULL AND line LIKE 'doc %'")
    assert out.split()[1] == str(sum(1 for r in records if "url" in r["meta"]))
    out = cli("sql", "--format", "csv", path,
              "SELECT count(*) AS n FROM lines WHERE (line->'meta'->>'lang') = 'fr' AND json_get_float(line, 'meta', 'score') > 10 AND json_contains(line, 'meta', 'url')")
    assert out.split()[1] == str(sum(1 for r in records if r["meta"]["lang"] == "fr" and r["id"] / 7 > 10 and "url" in r["meta"]))
    out = cli("sql", "--format", "csv", path, "SELECT json_get_str(line, 'meta', 'tags', 1) AS t, count(*) AS n FROM lines GROUP BY t ORDER BY t")
    assert out.split()[1:] == [f"b,{sum(1 for r in records if len(r['meta']['tags']) > 1)}", f",{sum(1 for r in records if len(r['meta']['tags']) < 2)}"]


def test_cli_batches_serve_the_field_and_skip_bad_records(tmp_path):
    path = bad_corpus(tmp_path)
    out = cli("batches", "--format", "jsonl", "--no-shuffle", "--batch-size", "10", "--field", "text", "--on-bad-record", "skip", path)
    first = json.loads(out.splitlines()[0])
    assert first["lines"] == [f"record {i}" for i in range(10) if i != 3]
    assert first["line_numbers"] == [i + 1 for i in range(10) if i != 3]
    r = subprocess.run([CLI, "batches", "--no-shuffle", "--field", "text", path], capture_output=True, text=True)
    assert r.returncode != 0 and "bad.jsonl:4" in r.stderr and "--on-bad-record skip" in r.stderr


def test_cli_batches_print_the_fields_beside_the_lines(corpus):
    path, records = corpus
    out = cli("batches", "--format", "jsonl", "--seed", "3", "--batch-size", "50", "--field", "text", "--fields", "id,meta.tags,/meta/url", path)
    rows = 0
    for batch in map(json.loads, out.splitlines()):
        fields = batch["fields"]
        assert list(fields) == ["id", "meta.tags", "/meta/url"]
        for k, number in enumerate(batch["line_numbers"]):
            r = records[number - 1]
            assert batch["lines"][k] == r["text"]  # escapes decoded, as the field serves them
            assert fields["id"][k] == r["id"] and fields["meta.tags"][k] == r["meta"]["tags"]
            assert fields["/meta/url"][k] == r["meta"].get("url")  # absent: null
            rows += 1
    assert rows == len(records)


def test_cli_fields_of_bad_records_are_null_under_null(tmp_path):
    path = bad_corpus(tmp_path)
    out = cli("batches", "--format", "jsonl", "--no-shuffle", "--batch-size", "10", "--fields", "text", "--on-bad-record", "null", path)
    first = json.loads(out.splitlines()[0])
    assert first["fields"]["text"] == [f"record {i}" if i != 3 else None for i in range(10)]
    assert first["lines"][3] == "not json"


def test_datafusion_python_reads_field_columns(corpus):
    datafusion = pytest.importorskip("datafusion")
    path, records = corpus
    b = mmb.MmapBatcher(path, field="text", fields=["meta.lang"], seed=1, index_cache=False)
    ctx = datafusion.SessionContext()
    ctx.register_table("lines", b.table(1))
    rows = ctx.sql('SELECT "meta.lang" AS lang, count(*) AS n FROM lines GROUP BY lang ORDER BY lang').to_pydict()
    want = __import__("collections").Counter(r["meta"]["lang"] for r in records)
    assert dict(zip(rows["lang"], rows["n"])) == dict(want)
    # The JSON functions in the user's own session, over the raw lines.
    raw = mmb.MmapBatcher(path, seed=1, index_cache=False)
    ctx = datafusion.SessionContext()
    mmb.register_json_functions(ctx)
    ctx.register_table("raw", raw.table(1))
    rows = ctx.sql(
        "SELECT json_get_str(line, 'meta', 'lang') AS lang, count(*) AS n, sum(json_get_int(line, 'id')) AS ids FROM raw "
        "WHERE json_contains(line, 'meta', 'tags') GROUP BY lang"
    ).to_pydict()
    assert dict(zip(rows["lang"], rows["n"])) == dict(want)
    assert sum(rows["ids"]) == sum(r["id"] for r in records)


def test_torch_trains_on_the_field(corpus):
    torch = pytest.importorskip("torch")
    path, records = corpus
    b = mmb.MmapBatcher(path, field="text", batch_size=50, seed=9, index_cache=False)
    loader = torch.utils.data.DataLoader(b.torch(), batch_size=None, num_workers=2, timeout=120)
    served = [line for batch in loader for line in batch]
    assert len(served) == 600 and sorted(served) == sorted(r["text"].encode() for r in records)


def test_a_line_that_is_not_utf8_is_a_bad_record_when_skipped_or_nulled(tmp_path):
    p = tmp_path / "mixed.jsonl"
    p.write_bytes(b'{"text": "one"}\n{"text": "t\xffwo"}\n{"text": "three"}\n')
    kw = {"field": "text", "batch_size": 3, "shuffle": False, "index_cache": False}
    with pytest.raises(mmb.InvalidUtf8Error):
        mmb.MmapBatcher(str(p), **kw).epoch(0).batch(0)
    skipped = pa.record_batch(mmb.MmapBatcher(str(p), on_bad_record="skip", **kw).epoch(0).batch(0))
    assert skipped.column("line").to_pylist() == ["one", "three"]
    assert skipped.column("line_number").to_pylist() == [1, 3]
    nulled = pa.record_batch(mmb.MmapBatcher(str(p), on_bad_record="null", **kw).epoch(0).batch(0))
    assert nulled.column("line").to_pylist() == ["one", None, "three"]
    (lines,) = list(mmb.MmapBatcher(str(p), on_bad_record="null", **kw))
    assert lines == [b"one", None, b"three"]
