"""Export of trained models (ONNX) and running the exported files (onnxruntime)."""

from rdam.export.onnx import EXPORTERS, ExportError, ExportWrapper, export_onnx
from rdam.export.runtime import OnnxRunner, compare_with_torch

__all__ = [
    "EXPORTERS",
    "ExportError",
    "ExportWrapper",
    "OnnxRunner",
    "compare_with_torch",
    "export_onnx",
]
