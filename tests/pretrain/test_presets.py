"""Preset parameter counts: the closed formula equals the real models."""

from __future__ import annotations

import pytest

from lmforge.errors import LmforgeError
from lmforge.models.presets import PRESETS, build_model, param_count, preset_table


@pytest.mark.parametrize("objective", ["mlm", "rtd", "clm"])
@pytest.mark.parametrize("preset", list(PRESETS))
def test_param_count_formula_matches_the_model(objective, preset):
    model = build_model(objective, preset, vocab_size=1234, max_len=96)
    assert sum(p.numel() for p in model.parameters()) == param_count(objective, preset, 1234, 96)
    assert model.config._attn_implementation == "sdpa"


def test_tiny_is_the_findings_bert():
    assert 4.4e6 < param_count("mlm", "tiny", 5000, 128) < 4.7e6
    assert "tiny (4x256)" in preset_table()


def test_unknown_preset_is_a_user_error():
    with pytest.raises(LmforgeError, match="unknown preset"):
        param_count("mlm", "huge", 100)
    with pytest.raises(LmforgeError, match="unknown objective"):
        build_model("seq2seq", "tiny", 100)
