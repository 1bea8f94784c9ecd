"""How long other REST clients wait while the engine decodes one large JSON body.

    python -m benchmarks.large_body_stall --megabytes 72 --repeats 3

A probe sends GET /v1/models/linear (status: no model run, so it measures the event loop alone)
back to back while another client posts a large predict body. The body leaves out the
signature's second input, refused once the body is decoded, so the engine's work on it is the
decoding alone. Prints, per
repeat, how long the large request took and the probe's worst and median latency meanwhile;
the probe's steady latency comes first. Compare a checkout from before
``serving/engine/body_decoders.py`` by running the same command there.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from benchmarks.lifecycle import start_engine, write_json

PROBE_PAUSE_S = 0.005


def large_body(megabytes: float) -> bytes:
    count = int(megabytes * 1e6 / 6)  # "0.25, " is 6 bytes
    return b'{"inputs": {"x": [' + b"0.25, " * count + b'0.25]}}'  # no "work"


def save_two_input_model(path: Path) -> Path:
    """``y = x`` over the inputs ``x`` (float) and ``work`` (int): a body without ``work`` is
    decoded in full, then refused."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x"),
                                  tf.TensorSpec([None], tf.int32, name="work")])
    def predict(x, work):
        return {"y": x}
    tf.saved_model.save(tf.Module(), str(path), signatures={"serving_default": predict})
    return path


def post(url: str, body: bytes) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body), timeout=600) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def send(url: str, body: bytes, result: dict, busy: threading.Event) -> None:
    started = time.monotonic()
    result["status"] = post(url, body)
    result["seconds"] = time.monotonic() - started
    busy.clear()


def probe_while(url: str, busy: threading.Event | None, seconds: float = 0.0) -> list[float]:
    """Latencies of back-to-back status requests, while ``busy`` is set (or for ``seconds``)."""
    latencies, until = [], time.monotonic() + seconds
    while (busy.is_set() if busy else time.monotonic() < until):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=600) as response:
            response.read()
        latencies.append(time.perf_counter() - started)
        time.sleep(PROBE_PAUSE_S)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=72)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write <out>.json")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="large-body-"))
    save_two_input_model(workdir / "linear" / "1")
    engine = start_engine({"linear": workdir / "linear"}, workdir)
    status_url = f"{engine.rest_url}/v1/models/linear"
    predict_url = f"{status_url}:predict"
    body = large_body(args.megabytes)
    try:
        steady = probe_while(status_url, None, seconds=2.0)
        print(f"body {len(body) / 1e6:.0f} MB; probe steady: median "
              f"{statistics.median(steady) * 1e3:.1f} ms, max {max(steady) * 1e3:.1f} ms")
        rows = []
        for repeat in range(args.repeats):
            busy = threading.Event()
            busy.set()
            result: dict = {}
            sender = threading.Thread(target=send, args=(predict_url, body, result, busy))
            sender.start()
            latencies = probe_while(status_url, busy)
            sender.join()
            row = {"repeat": repeat, "status": result["status"],
                   "large_request_s": round(result["seconds"], 2),
                   "probe_max_ms": round(max(latencies) * 1e3, 1),
                   "probe_median_ms": round(statistics.median(latencies) * 1e3, 1),
                   "probes": len(latencies)}
            rows.append(row)
            print(f"repeat {repeat}: large request {row['large_request_s']} s "
                  f"(HTTP {row['status']}); {row['probes']} probes meanwhile, max "
                  f"{row['probe_max_ms']} ms, median {row['probe_median_ms']} ms", flush=True)
        if args.out:
            write_json(args.out.with_suffix(".json"), {
                "megabytes": args.megabytes, "steady_ms": statistics.median(steady) * 1e3,
                "repeats": rows})
    finally:
        engine.stop()


if __name__ == "__main__":
    main()
