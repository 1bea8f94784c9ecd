"""The course-material baseline: a Flask app that calls ``model.predict`` on every request.

Run as ``python -m benchmarks.flask_baseline MODEL.keras PORT``; it answers
``POST /v1/models/m:predict`` with TensorFlow Serving's row format so the same load generator
and payload drive it.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402


def create_app(model_path: str) -> Flask:
    model = keras.saving.load_model(model_path)
    app = Flask(__name__)

    @app.post("/v1/models/<name>:predict")
    def predict(name: str):
        rows = request.get_json(force=True)["instances"]
        batch = {key: np.asarray([row[key] for row in rows]) for key in rows[0]}
        outputs = model.predict(batch, verbose=0)
        return jsonify({"predictions": {k: v.tolist() for k, v in outputs.items()}})
    return app


if __name__ == "__main__":
    create_app(sys.argv[1]).run(host="127.0.0.1", port=int(sys.argv[2]), threaded=True)
