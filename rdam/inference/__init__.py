"""Prediction on real videos: ``rdam.load(...)`` gives a :class:`Predictor`.

- :mod:`~rdam.inference.loading`: :func:`load`, the shipped default model;
- :mod:`~rdam.inference.predictor`: :class:`Predictor` (files -> clips -> runner -> results);
- :mod:`~rdam.inference.results`: :class:`Prediction`, :class:`Analysis`;
- :mod:`~rdam.inference.formats`: JSON / CSV output;
- :mod:`~rdam.inference.inputs`: which clips the given paths stand for;
- :mod:`~rdam.inference.batch`: many files: JSONL written as results arrive, resume, shards,
  progress.

Errors: :meth:`Predictor.predict_video` and :meth:`Predictor.analyze` raise the typed errors of
:mod:`rdam.errors`; :meth:`Predictor.predict_many`, :meth:`Predictor.analyze_many` and
:func:`predict_jsonl` give one result per file, a failed one carrying its error.

The runners themselves (PyTorch, precision) are :mod:`rdam.runtime`; the ONNX one is
:class:`rdam.export.OnnxRunner`.
"""

from rdam.checkpoint import ASSETS_DIR, DEFAULT_MODEL_FILENAME, default_model_path, load_bundle
from rdam.errors import NoFaceError
from rdam.inference.batch import BatchReport, predict_jsonl
from rdam.inference.formats import OUTPUT_FORMATS, format_predictions
from rdam.inference.inputs import expand_inputs
from rdam.inference.loading import RUNTIMES, load, predictor_from_bundle
from rdam.inference.predictor import Predictor
from rdam.inference.results import Analysis, Prediction

__all__ = [
    "ASSETS_DIR",
    "DEFAULT_MODEL_FILENAME",
    "OUTPUT_FORMATS",
    "RUNTIMES",
    "Analysis",
    "BatchReport",
    "NoFaceError",
    "Prediction",
    "Predictor",
    "default_model_path",
    "expand_inputs",
    "format_predictions",
    "load",
    "load_bundle",
    "predict_jsonl",
    "predictor_from_bundle",
]
