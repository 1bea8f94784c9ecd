"""The TFLite variants ``export.tflite`` converts, importable without TensorFlow (the CLI checks
``--tflite`` before it pays for the import)."""

VARIANTS = ("fp32", "fp16", "dynamic", "int8", "qat")
