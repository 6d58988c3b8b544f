"""Each input format read from small files the test writes."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from _helpers import read_records
from lmforge.corpus.readers import detect_encoding, split_sentences

CHINESE = [
    "这家酒店的服务非常周到，房间也很干净，下次还会再来。",
    "今天天气很好，我们去公园散步，看到很多人在锻炼身体。",
    "这本书的内容很丰富，作者的观点也很有启发性，值得一读。",
]
TRADITIONAL = [
    "這家酒店的服務非常周到，房間也很乾淨，下次還會再來。",
    "今天天氣很好，我們去公園散步，看到很多人在鍛鍊身體。",
    "這本書的內容很豐富，作者的觀點也很有啟發性，值得一讀。",
]


def test_txt_one_document_per_line(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("第一行\r\n第二行\n\n  \n最后一行没有换行", encoding="utf-8")
    docs, bad = read_records(path, name="web")
    assert [d.text for d in docs] == ["第一行", "第二行", "最后一行没有换行"]
    assert [d.id for d in docs] == ["web/a.txt:1", "web/a.txt:2", "web/a.txt:5"]
    assert docs[0].meta == {"source": "web", "file": str(path), "line": 1, "encoding": "utf-8"}
    assert [(b.id, b.reason) for b in bad] == [
        ("web/a.txt:3", "empty_text"),
        ("web/a.txt:4", "empty_text"),
    ]


def test_txt_only_newline_ends_a_line(tmp_path):
    # str.splitlines would also split on \x1c, \x85 and U+2028: one line must stay one document
    path = tmp_path / "a.txt"
    path.write_text("甲\x1c乙\u2028丙\x85丁\n", encoding="utf-8")
    docs, _ = read_records(path)
    assert [d.text for d in docs] == ["甲\x1c乙\u2028丙\x85丁"]


def test_txt_one_document_per_file(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("标题\n\n正文第一段。\n", encoding="utf-8")
    (tmp_path / "d" / "y.txt").write_text("另一篇。", encoding="utf-8")
    docs, bad = read_records(tmp_path / "d", doc_per="file", name="books")
    assert not bad
    assert [(d.id, d.text) for d in docs] == [
        ("books/x.txt", "标题\n\n正文第一段。\n"),
        ("books/y.txt", "另一篇。"),
    ]


def test_utf8_bom_is_removed(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeff".encode() + "你好\n世界\n".encode())
    docs, bad = read_records(path)
    assert [d.text for d in docs] == ["你好", "世界"] and not bad
    assert docs[0].meta["encoding"] == "utf-8-sig"


@pytest.mark.parametrize(
    ("encoding", "lines"), [("gb18030", CHINESE), ("gbk", CHINESE), ("big5", TRADITIONAL)]
)
def test_chinese_legacy_encodings_are_detected(tmp_path, encoding, lines):
    path = tmp_path / f"{encoding}.txt"
    path.write_bytes("\n".join(lines).encode(encoding))
    docs, bad = read_records(path)
    assert not bad
    assert [d.text for d in docs] == lines
    expected = "big5" if encoding == "big5" else "gb18030"
    assert {d.meta["encoding"] for d in docs} == {expected}


def test_detect_encoding_on_samples():
    assert detect_encoding(b"plain ascii\n") == "utf-8"
    assert detect_encoding("中文".encode()) == "utf-8"
    assert detect_encoding("\n".join(CHINESE).encode("gb18030")) == "gb18030"
    assert detect_encoding("\n".join(TRADITIONAL).encode("big5")) == "big5"
    assert detect_encoding(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR") is None
    # text in another encoding is not "binary": read as UTF-8, its bad lines are counted
    assert detect_encoding("café au lait, s'il vous plaît\n".encode("latin-1") * 20) == "utf-8"
    assert detect_encoding(bytes(range(1, 256)) * 10) is None
    # a UTF-8 sample cut in the middle of a character is still UTF-8
    assert detect_encoding(("中文" * 100).encode()[:-1]) == "utf-8"


def test_explicit_encoding(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("你好".encode("gbk"))
    docs, _ = read_records(path, encoding="GBK")
    assert docs[0].text == "你好" and docs[0].meta["encoding"] == "gbk"


def test_jsonl_text_field_and_metadata(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [
        {"content": "第一条", "url": "http://a", "score": 0.5, "tags": ["x"], "source": "crawl"},
        {"content": "第二条", "url": "http://b", "score": None},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    docs, bad = read_records(path, text_field="content", name="j")
    assert not bad
    assert [d.text for d in docs] == ["第一条", "第二条"]
    assert docs[0].id == "j/d.jsonl:1"
    assert docs[0].meta == {
        "url": "http://a",
        "score": 0.5,
        "tags": ["x"],
        "record_source": "crawl",  # the record's own "source" does not clobber ours
        "source": "j",
        "file": str(path),
        "line": 1,
    }


def test_jsonl_id_field(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a1", "text": "甲"}\n{"id": 7, "text": "乙"}\n')
    docs, _ = read_records(path, id_field="id", name="j")
    assert [d.id for d in docs] == ["j/a1", "j/7"]


def test_csv_streams_rows_with_quoted_newlines(tmp_path):
    path = tmp_path / "t.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "body", "label"])
        writer.writerow(["1", "第一行\n第二行, 有逗号", "pos"])
        writer.writerow(["2", '引号"内"', "neg"])
    docs, bad = read_records(path, text_field="body", name="c")
    assert not bad
    assert [d.text for d in docs] == ["第一行\n第二行, 有逗号", '引号"内"']
    assert [d.id for d in docs] == ["c/t.csv:1", "c/t.csv:2"]
    assert docs[1].meta["line"] == 4 and docs[1].meta["row"] == 2
    assert docs[0].meta["label"] == "pos" and docs[0].meta["id"] == "1"


def test_tsv_and_gbk_csv(tmp_path):
    tsv = tmp_path / "t.tsv"
    tsv.write_text("text\tlang\n你好,世界\tzh\n", encoding="utf-8")
    gbk = tmp_path / "g.csv"
    gbk.write_bytes(
        ("text,n\n" + "\n".join(f"{t},{i}" for i, t in enumerate(CHINESE))).encode("gbk")
    )
    docs, bad = read_records(tsv, gbk)
    assert not bad
    assert [d.text for d in docs] == [*CHINESE, "你好,世界"]  # sorted by path: g.csv first
    assert docs[0].meta["encoding"] == "gb18030"


def test_parquet_batches_and_metadata(tmp_path):
    path = tmp_path / "p.parquet"
    n = 2500  # more than one record batch
    table = pa.table(
        {"text": [f"文档{i}" for i in range(n)], "n": list(range(n)), "blob": [b"\x00"] * n}
    )
    pq.write_table(table, path, row_group_size=1000)
    docs, bad = read_records(path, name="p")
    assert not bad and len(docs) == n
    assert docs[-1].id == f"p/p.parquet:{n}" and docs[-1].text == f"文档{n - 1}"
    assert docs[0].meta["n"] == 0 and docs[0].meta["blob"] == "AA=="  # bytes as base64
    json.dumps([d.meta for d in docs])


PAGE = (
    "<html><head><meta charset='{charset}'><title>测试页面</title></head><body>"
    "<nav>首页 | 关于我们 | 联系方式</nav><article><h1>正文标题</h1><p>{body}</p>"
    "<p>第二段文字，说明正文抽取会保留这里。</p></article><footer>版权所有</footer></body></html>"
)


def test_html_main_text(tmp_path):
    body = "这是一段很长的正文内容，用来测试正文抽取是否正常工作。" * 8
    page = tmp_path / "page.html"
    page.write_bytes(PAGE.format(charset="gbk", body=body).encode("gbk"))
    docs, bad = read_records(page, name="h")
    assert not bad and len(docs) == 1
    doc = docs[0]
    assert doc.id == "h/page.html"
    assert body in doc.text and "版权所有" not in doc.text and "联系方式" not in doc.text
    assert doc.meta["title"] in ("测试页面", "正文标题") and doc.meta["encoding"] == "gb18030"


def _warc(records: list[tuple[str, str, bytes]]) -> bytes:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    for url, content_type, payload in records:
        headers = StatusAndHeaders("200 OK", [("Content-Type", content_type)], protocol="HTTP/1.0")
        writer.write_record(
            writer.create_warc_record(
                url, "response", payload=io.BytesIO(payload), http_headers=headers
            )
        )
    return out.getvalue()


def test_warc_html_responses(tmp_path):
    body = "网页正文内容，足够长以便抽取器认为这是正文而不是样板。" * 6
    html = PAGE.format(charset="utf-8", body=body).encode()
    path = tmp_path / "crawl.warc.gz"
    path.write_bytes(
        _warc(
            [
                ("http://example.com/a", "text/html; charset=utf-8", html),
                ("http://example.com/img.png", "image/png", b"\x89PNG\x00"),
                ("http://example.com/empty", "text/html", b"<html><body></body></html>"),
            ]
        )
    )
    docs, bad = read_records(path, name="w")
    assert len(docs) == 1
    doc = docs[0]
    assert body in doc.text and doc.id == "w/crawl.warc.gz:1"
    assert doc.meta["url"] == "http://example.com/a" and doc.meta["title"]
    assert doc.meta["warc_record_id"].startswith("<urn:uuid:")
    assert [(b.id, b.reason) for b in bad] == [("w/crawl.warc.gz:3", "no_main_text")]


@pytest.mark.parametrize(
    ("suffix", "compress"),
    [
        (".gz", gzip.compress),
        (".zst", lambda b: zstandard.ZstdCompressor().compress(b)),
        (".bz2", bz2.compress),
        (".xz", lzma.compress),
    ],
)
def test_compressed_inputs(tmp_path, suffix, compress):
    lines = [f"第{i}行" for i in range(1000)]
    txt = tmp_path / f"a.txt{suffix}"
    txt.write_bytes(compress("\n".join(lines).encode()))
    jsonl = tmp_path / f"b.jsonl{suffix}"
    jsonl.write_bytes(compress("\n".join(json.dumps({"text": t}) for t in lines).encode()))
    docs, bad = read_records(txt, jsonl)
    assert not bad
    assert [d.text for d in docs] == lines + lines
    assert docs[0].id.endswith(f"a.txt{suffix}:1")


def test_fsspec_url(tmp_path):
    import fsspec

    with fsspec.open("memory://lmforge-test/x.jsonl", "w") as f:
        f.write('{"text": "内存文件"}\n')
    docs, bad = read_records("memory://lmforge-test/x.jsonl", name="m")
    assert [d.text for d in docs] == ["内存文件"] and not bad
    assert docs[0].meta["file"].startswith("memory://")
    assert docs[0].id == "m/x.jsonl:1"
    fsspec.filesystem("memory").rm("/lmforge-test", recursive=True)


def test_split_sentences_keeps_closing_quotes():
    text = "他说：“今天很好。”然后走了。真的吗？！『是的。』（完。）"
    assert split_sentences(text) == [
        "他说：“今天很好。”",
        "然后走了。",
        "真的吗？！",
        "『是的。』",
        "（完。）",
    ]
    assert split_sentences("没有句号") == ["没有句号"]
    assert split_sentences("") == []


def test_real_reviews_in_gb18030_round_trip(tmp_path, review_sample):
    texts = [r["text"] for r in review_sample if r["text"].strip()]
    path = tmp_path / "reviews_gbk.txt"
    path.write_bytes("\n".join(texts).encode("gb18030"))
    docs, bad = read_records(path)
    assert not bad and [d.text for d in docs] == texts
    assert docs[0].meta["encoding"] == "gb18030"
