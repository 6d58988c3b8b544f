"""Damage inside a file costs only the records it touches: a stray NUL byte, a UTF-16/32
file, an unclosed CSV quote. Counted per record, never a whole file lost as one record."""

from __future__ import annotations

import codecs
import gzip
import json

import numpy as np
import pytest

from _helpers import read_records


@pytest.fixture(scope="module")
def lines(review_sample) -> list[str]:
    return [r["text"] for r in review_sample[:200]]


def test_one_nul_byte_costs_nothing_but_its_line(tmp_path, lines):
    path = tmp_path / "reviews.txt"
    raw = [line.encode() for line in lines]
    raw[2] = raw[2][:6] + b"\x00" + raw[2][6:]  # one NUL early in the file
    path.write_bytes(b"\n".join(raw) + b"\n")
    docs, bad = read_records(path, name="r")
    assert not bad
    assert [d.text.replace("\x00", "") for d in docs] == lines
    assert docs[2].id == "r/reviews.txt:3"


def test_a_few_control_bytes_in_jsonl_and_csv_are_not_binary(tmp_path, lines):
    jsonl = tmp_path / "a.jsonl"
    records = [json.dumps({"text": t}, ensure_ascii=False).encode() for t in lines[:50]]
    records[0] = b"\x00\x01" + records[0]  # garbage before the first object
    jsonl.write_bytes(b"\n".join(records) + b"\n")
    csv_file = tmp_path / "b.csv"
    plain = [t.replace(",", " ").replace('"', " ") for t in lines[:50]]
    csv_file.write_bytes(b"text\n" + "\n".join(plain).encode() + b"\x00\n")
    docs, bad = read_records(jsonl, csv_file)
    assert [(b.id, b.reason) for b in bad] == [("a/a.jsonl:1", "malformed_json")]
    assert len(docs) == 49 + 50


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_bom_are_read_line_by_line(tmp_path, lines, codec):
    path = tmp_path / "wide.txt"
    body = "\r\n".join(lines[:100]) + "\r\n"
    bom = {"utf-16": b"", "utf-16-be": codecs.BOM_UTF16_BE, "utf-32": b""}[codec]
    path.write_bytes(bom + body.encode(codec))  # 'utf-16'/'utf-32' write their own BOM
    docs, bad = read_records(path, name="w")
    assert not bad
    assert [d.text for d in docs] == lines[:100]
    assert docs[99].id == "w/wide.txt:100"
    assert docs[0].meta["encoding"].startswith("utf-")


def test_utf16_without_bom_is_binary_unless_declared(tmp_path, lines):
    path = tmp_path / "le.txt"
    path.write_bytes("\n".join(lines[:30]).encode("utf-16-le"))
    _, bad = read_records(path)
    assert [b.reason for b in bad] == ["binary_file"]
    docs, bad = read_records(path, encoding="utf-16-le")
    assert not bad and [d.text for d in docs] == lines[:30]


def test_utf16_jsonl_and_csv(tmp_path, lines):
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_bytes(
        "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in lines[:30]).encode(
            "utf-16"
        )
    )
    csv_file = tmp_path / "b.csv"
    csv_file.write_bytes(
        ("text,label\n" + "".join(f'"{t}",pos\n' for t in lines[30:60])).encode("utf-16")
    )
    docs, bad = read_records(jsonl, csv_file)
    assert not bad
    assert [d.text for d in docs] == lines[:60]
    assert docs[-1].meta["encoding"] == "utf-16"


def test_damage_inside_a_utf16_file_costs_only_its_line(tmp_path, lines):
    path = tmp_path / "wide.txt"
    good = [line.encode("utf-16-le") for line in lines[:20]]
    good[5] = good[5] + b"\x00\xd8"  # a lone high surrogate at the end of line 6
    data = codecs.BOM_UTF16_LE + b"\n\x00".join(good) + b"\n\x00" + b"x"  # odd last byte
    path.write_bytes(data)
    docs, bad = read_records(path, name="w")
    assert [(b.id, b.reason) for b in bad] == [
        ("w/wide.txt:6", "invalid_encoding"),
        ("w/wide.txt:21", "invalid_encoding"),
    ]
    assert [d.text for d in docs] == lines[:5] + lines[6:20]


def test_real_binary_files_are_still_one_binary_record(tmp_path, lines):
    (tmp_path / "archive.txt").write_bytes(gzip.compress("\n".join(lines).encode()))
    (tmp_path / "array.jsonl").write_bytes(np.arange(20000, dtype=np.int32).tobytes())
    (tmp_path / "zeros.csv").write_bytes(bytes(4096))
    docs, bad = read_records(tmp_path / "*", name="b")
    assert not docs
    assert sorted((b.id, b.reason) for b in bad) == [
        ("b/archive.txt", "binary_file"),
        ("b/array.jsonl", "binary_file"),
        ("b/zeros.csv", "binary_file"),
    ]


def test_unclosed_csv_quote_costs_one_row(tmp_path, lines):
    path = tmp_path / "t.csv"
    rows = [t.replace(",", " ").replace('"', " ") + ",pos" for t in lines[:40]]
    rows[9] = '"' + rows[9]  # the quote is never closed
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    docs, bad = read_records(path, name="c")
    assert [(b.id, b.reason) for b in bad] == [("c/t.csv:10", "malformed_csv")]
    assert f"{path}:11" in bad[0].detail  # the file line (header is line 1)
    assert len(docs) == 39
    assert [d.meta["row"] for d in docs] == [r for r in range(1, 41) if r != 10]
    assert docs[9].text == rows[10].removesuffix(",pos")


def test_unclosed_quote_in_a_one_column_csv_and_legit_multiline_fields(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text(
        'text\n第一条\n"一个字段\n跨两行"\n"没有闭合的引号\n第四条\n第五条\n', encoding="utf-8"
    )
    docs, bad = read_records(path, name="c")
    assert [d.text for d in docs] == ["第一条", "一个字段\n跨两行", "第四条", "第五条"]
    assert [(b.id, b.reason) for b in bad] == [("c/one.csv:3", "malformed_csv")]
    assert f"{path}:5" in bad[0].detail
