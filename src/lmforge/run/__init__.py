"""``lmforge run``: a recipe's stages in order, in one package.

- :mod:`.recipe`: the recipe file and its stage sections (pydantic), loaded and validated;
- :mod:`.stages`: each stage of a run, its fingerprint, skip and resume;
- :mod:`.classify`: the classify stage (held-out split out of the corpus, baselines, encoder);
- :mod:`.compress`: the compress stage (distill → int8 ONNX → bench);
- :mod:`.report`: ``runs/<name>/report.html``.

The packages it drives (corpus/, tokenizer/, pretrain/, classify/, compress/) know nothing about
runs: a *stage* is always one section of a recipe run by ``lmforge run``.
"""
