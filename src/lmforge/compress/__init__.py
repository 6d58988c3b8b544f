"""Make a trained classifier small and fast: distill, prune, quantize, export, benchmark.

Every step reads a classifier folder and writes a new one that :class:`lmforge.predictor.Predictor`
loads (``lmforge_model.json`` names its ``backend``: ``native``, ``onnx`` or ``torchscript``):

- :mod:`.distill`: teacher → TextCNN / BiLSTM / fewer-layer transformer students, soft targets;
- :mod:`.prune`: global magnitude pruning and attention-head pruning, each with a recovery fine-tune;
- :mod:`.quantize`: PyTorch dynamic int8, ONNX Runtime int8 (dynamic, static with calibration);
- :mod:`.export`: ONNX (dynamic batch / sequence axes) and TorchScript, checked for parity;
- :mod:`.bench`: latency, throughput, peak RSS, size and test metrics of every variant;
- :mod:`.chain`: any chain of distill → prune → quantize / export (``lmforge run``'s compress stage, :mod:`lmforge.run.compress`, calls it).
"""
