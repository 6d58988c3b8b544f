"""Bad inputs: each gives a BadRecord with its own reason and a message naming file (and line);
the rest of the input is read. Documents + BadRecords always equal the records in the file."""

from __future__ import annotations

import gzip
import io
import json
import tracemalloc
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _helpers import read_records
from lmforge.corpus.sources import FileSource, plan_shards
from lmforge.errors import LmforgeError


def test_invalid_utf8_bytes_skip_only_their_line(tmp_path):
    path = tmp_path / "mixed.txt"
    lines = [f"第{i}行，正常的中文内容。".encode() for i in range(50)]
    lines[7] = "坏".encode() + b"\xff\xfe" + "字节".encode()
    lines[30] = "截断的字".encode()[:-1]  # a character cut in half
    path.write_bytes(b"\n".join(lines) + b"\n")
    docs, bad = read_records(path, name="s")
    assert len(docs) == 48 and len(docs) + len(bad) == 50
    assert [(b.id, b.reason) for b in bad] == [
        ("s/mixed.txt:8", "invalid_encoding"),
        ("s/mixed.txt:31", "invalid_encoding"),
    ]
    assert f"{path}:8" in bad[0].detail and "utf-8" in bad[0].detail
    assert {d.meta["encoding"] for d in docs} == {"utf-8"}


def test_invalid_utf8_in_jsonl(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "\xc3("}\n{"text": "fine"}\n')
    docs, bad = read_records(path)
    assert [d.text for d in docs] == ["ok", "fine"]
    assert [(b.reason, f"{path}:2" in b.detail) for b in bad] == [("invalid_encoding", True)]


def test_truncated_gzip_keeps_lines_before_the_cut(tmp_path):
    lines = [f"第{i}行：这是压缩文件里的一行文字。" for i in range(20000)]
    data = gzip.compress("\n".join(lines).encode() + b"\n")
    path = tmp_path / "cut.txt.gz"
    path.write_bytes(data[: len(data) // 2])
    docs, bad = read_records(path, name="g")
    assert [b.reason for b in bad] == ["truncated_file"]
    assert str(path) in bad[0].detail and f"after line {len(docs)}" in bad[0].detail
    assert 1000 < len(docs) < len(lines)
    assert [d.text for d in docs] == lines[: len(docs)]  # in order, none damaged


def test_truncated_gzip_jsonl_and_next_file_still_read(tmp_path):
    records = "".join(json.dumps({"text": f"记录{i}"}) + "\n" for i in range(5000)).encode()
    data = gzip.compress(records)
    (tmp_path / "a.jsonl.gz").write_bytes(data[: len(data) * 2 // 3])
    (tmp_path / "b.jsonl").write_bytes(b"".join(records.splitlines(keepends=True)[:5]))
    docs, bad = read_records(tmp_path / "*.jsonl*")
    assert [b.reason for b in bad] == ["truncated_file"]
    assert sum(d.meta["file"].endswith("b.jsonl") for d in docs) == 5


def test_gzip_name_but_not_gzip_data(tmp_path):
    path = tmp_path / "fake.txt.gz"
    path.write_bytes(b"this is not gzip data at all\n" * 10)
    docs, bad = read_records(path)
    assert not docs and [b.reason for b in bad] == ["corrupt_file"]
    assert str(path) in bad[0].detail


def test_malformed_json_lines(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"text": "一"}\n'
        '{"text": "二", \n'  # malformed
        "[1, 2]\n"  # not an object
        '{"body": "三"}\n'  # missing field
        '{"text": null}\n'  # null
        '{"text": 42}\n'  # bad type
        '{"text": "   "}\n'  # empty
        "\n"  # blank line
        '{"text": "四"}\n',
        encoding="utf-8",
    )
    docs, bad = read_records(path, name="j")
    assert [d.text for d in docs] == ["一", "四"]
    assert [(b.id, b.reason) for b in bad] == [
        ("j/bad.jsonl:2", "malformed_json"),
        ("j/bad.jsonl:3", "malformed_json"),
        ("j/bad.jsonl:4", "missing_field"),
        ("j/bad.jsonl:5", "missing_field"),
        ("j/bad.jsonl:6", "bad_type"),
        ("j/bad.jsonl:7", "empty_text"),
        ("j/bad.jsonl:8", "empty_text"),
    ]
    assert bad[0].detail.startswith(f"{path}:2: malformed JSON")


@pytest.mark.parametrize(
    "name", ["empty.txt", "empty.jsonl", "empty.csv", "empty.html", "empty.parquet"]
)
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    docs, bad = read_records(path, name="e")
    assert not docs
    assert [(b.id, b.reason) for b in bad] == [(f"e/{name}", "empty_file")]
    assert str(path) in bad[0].detail


def test_empty_gzip_file(tmp_path):
    path = tmp_path / "empty.txt.gz"
    path.write_bytes(gzip.compress(b""))
    docs, bad = read_records(path)
    assert not docs and [b.reason for b in bad] == ["empty_file"]


def test_binary_file_gives_one_record_and_nothing_else(tmp_path):
    path = tmp_path / "image.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 400 + b"\nlooks like text\n")
    docs, bad = read_records(path, name="b")
    assert not docs
    assert [(b.id, b.reason) for b in bad] == [("b/image.txt", "binary_file")]
    assert str(path) in bad[0].detail


def test_binary_without_nul_bytes(tmp_path):
    path = tmp_path / "noise.jsonl"
    path.write_bytes(bytes(range(1, 256)) * 300)
    docs, bad = read_records(path)
    assert not docs and [b.reason for b in bad] == ["binary_file"]


def test_50mb_single_line_is_too_long_and_memory_stays_bounded(tmp_path):
    path = tmp_path / "huge.txt"
    with path.open("wb") as f:
        f.write("短行\n".encode())
        block = ("长" * 1_000_000).encode()  # 3 MB
        for _ in range(17):  # ~51 MB on one line
            f.write(block)
        f.write("\n最后一行\n".encode())
    tracemalloc.start()
    try:
        docs, bad = read_records(path, name="h")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [d.text for d in docs] == ["短行", "最后一行"]
    assert [(b.id, b.reason) for b in bad] == [("h/huge.txt:2", "too_long")]
    assert f"{path}:2" in bad[0].detail
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_too_long_jsonl_and_csv_records(tmp_path):
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(json.dumps({"text": "x" * 200}) + "\n" + json.dumps({"text": "ok"}) + "\n")
    csv_file = tmp_path / "b.csv"
    csv_file.write_text("text\n" + "y" * 200 + "\nok\n")
    docs, bad = read_records(jsonl, csv_file, max_chars=100)
    assert [d.text for d in docs] == ["ok", "ok"]
    assert [b.reason for b in bad] == ["too_long", "too_long"]


def test_malformed_csv_rows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(
        b"text,label\ngood,pos\ntoo,many,fields\n\xff\xfebad bytes,neg\n\nalso good,neg\n"
    )
    docs, bad = read_records(path, name="c", encoding="utf-8")
    assert [d.text for d in docs] == ["good", "also good"]
    assert [(b.id, b.reason) for b in bad] == [
        ("c/t.csv:2", "malformed_csv"),
        ("c/t.csv:3", "invalid_encoding"),
        ("c/t.csv:4", "empty_text"),
    ]
    assert f"{path}:3" in bad[0].detail and f"{path}:4" in bad[1].detail


def test_csv_without_the_text_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("body\n一\n二\n")
    docs, bad = read_records(path)
    assert not docs and [b.reason for b in bad] == ["missing_field", "missing_field"]


def test_parquet_bad_values_and_corrupt_file(tmp_path):
    good = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": ["一", None, "", "二"]}), good)
    numbers = tmp_path / "b.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), numbers)
    corrupt = tmp_path / "c.parquet"
    corrupt.write_bytes(b"PAR1 this is not really parquet")
    docs, bad = read_records(tmp_path / "*.parquet", name="p")
    assert [d.text for d in docs] == ["一", "二"]
    assert [(b.id, b.reason) for b in bad] == [
        ("p/a.parquet:2", "missing_field"),
        ("p/a.parquet:3", "empty_text"),
        ("p/b.parquet:1", "bad_type"),
        ("p/b.parquet:2", "bad_type"),
        ("p/c.parquet", "corrupt_file"),
    ]


def test_html_without_main_text(tmp_path):
    path = tmp_path / "empty.html"
    path.write_text("<html><head><title>t</title></head><body><script>x()</script></body></html>")
    docs, bad = read_records(path)
    assert not docs and [b.reason for b in bad] == ["no_main_text"]


def test_corrupt_warc_record(tmp_path):
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    body = (
        "<html><body><article><p>"
        + "网页正文内容，足够长以便抽取。" * 20
        + "</p></article></body></html>"
    )
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=False)
    headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.0")
    record = writer.create_warc_record(
        "http://a/", "response", payload=io.BytesIO(body.encode()), http_headers=headers
    )
    writer.write_record(record)
    path = tmp_path / "x.warc"
    path.write_bytes(out.getvalue() + b"GARBAGE NOT A WARC HEADER\r\n\r\n" + b"junk" * 100)
    docs, bad = read_records(path, name="w")
    assert len(docs) == 1
    assert [(b.id, b.reason) for b in bad] == [("w/x.warc:2", "corrupt_record")]
    assert str(path) in bad[0].detail


def test_missing_path_and_empty_glob(tmp_path):
    with pytest.raises(LmforgeError, match="input path not found: .*nope.txt"):
        plan_shards([FileSource(paths=[str(tmp_path / "nope.txt")])])
    with pytest.raises(LmforgeError, match=r"input path not found: .*\*\.jsonl"):
        plan_shards([FileSource(paths=[str(tmp_path / "*.jsonl")])])


def test_every_record_accounted_for(tmp_path):
    """One file holding all the line-level problems: documents + bad records = lines."""
    lines = [
        b'{"text": "ok"}',
        b"{broken",
        b'{"text": "\xff"}',
        b'{"text": ""}',
        b'{"other": 1}',
        b'{"text": ["list"]}',
        b'{"text": "' + b"z" * 500 + b'"}',
        b'{"text": "end"}',
    ]
    path = tmp_path / "all.jsonl"
    path.write_bytes(b"\n".join(lines))
    docs, bad = read_records(path, max_chars=100)
    assert len(docs) + len(bad) == len(lines)
    assert Counter(b.reason for b in bad) == Counter(
        [
            "malformed_json",
            "invalid_encoding",
            "empty_text",
            "missing_field",
            "bad_type",
            "too_long",
        ]
    )


def test_truncated_zstd_and_multi_frame_zstd(tmp_path):
    import zstandard

    lines = "".join(f"第{i}行：{i * 7919 % 100003}\n" for i in range(30000)).encode()
    frame = zstandard.ZstdCompressor().compress(lines)
    (tmp_path / "cut.txt.zst").write_bytes(frame[: len(frame) * 3 // 4])
    (tmp_path / "two.txt.zst").write_bytes(frame + frame)  # concatenated frames: all read
    docs, bad = read_records(tmp_path / "*.zst", name="z")
    assert [(b.id, b.reason) for b in bad] == [("z/cut.txt.zst", "truncated_file")]
    assert sum(d.id.startswith("z/two.txt.zst:") for d in docs) == 60000
    assert 0 < sum(d.id.startswith("z/cut.txt.zst:") for d in docs) < 30000
