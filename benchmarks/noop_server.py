"""The ceiling of the Python front ends: gRPC and HTTP servers that answer Predict at once.

Same libraries, event loop and ports layout as the engine (grpc.aio, aiohttp, uvloop), but no
model, no codec, no batching: a fixed response per request. Whatever throughput this reaches on
the machine bounds what any Python front end on it can serve, whatever the model.

    python -m benchmarks.noop_server GRPC_PORT REST_PORT
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import grpc
import uvloop
from aiohttp import web

from tf_serving_platform.servectl.engine_process import free_port

RESPONSE = b""  # an empty PredictResponse
JSON = b'{"predictions": [[0.0]]}'


async def serve(grpc_port: int, rest_port: int) -> None:
    async def predict(request: bytes, context) -> bytes:
        return RESPONSE

    handler = grpc.method_handlers_generic_handler("tensorflow.serving.PredictionService", {
        "Predict": grpc.unary_unary_rpc_method_handler(predict)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await server.start()

    async def rest(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=JSON, content_type="application/json")
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rest)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", rest_port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


def start() -> tuple[subprocess.Popen, int, int]:
    """This server in a child process, once it listens: ``(process, gRPC port, REST port)``."""
    grpc_port, rest_port = free_port(), free_port()
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.noop_server", str(grpc_port),
                                str(rest_port)], stdout=subprocess.PIPE, text=True)
    process.stdout.readline()  # "ready"
    return process, grpc_port, rest_port


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(int(sys.argv[1]), int(sys.argv[2])))
