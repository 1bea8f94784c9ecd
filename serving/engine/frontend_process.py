"""One front-end process: the REST and gRPC ports, over the model process's service.

Started by :mod:`serving.engine.frontend_processes` as ``python -m
serving.engine.frontend_process SOCKET INDEX``; it connects to the model process, receives the
engine's settings, listens on the shared ports (``SO_REUSEPORT``) and says so. SIGTERM or SIGINT:
it stops accepting and finishes the requests it holds (``--grace_period_seconds``), as the
engine does. When the model process goes away it stops at once: nothing could answer.

It never imports TensorFlow itself, only the protocol buffers TensorFlow ships (those of
``tensorflow-serving-api`` import them): the package's ``__init__`` loads the whole runtime,
about 290 MB of private memory and 3 s per process, for nothing a front end does. Any use of
TensorFlow proper here is a bug, and fails loudly
(:mod:`serving.tensorflow_protos`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from tf_serving_platform.serving.tensorflow_protos import protos_only

log = logging.getLogger("serving")
SETTINGS_TIMEOUT_S = 30.0


async def serve(socket_path: str, index: int) -> int:
    from tf_serving_platform.serving.engine import log_format
    from tf_serving_platform.serving.engine.front_ends import FrontEnds, Listeners
    from tf_serving_platform.serving.engine.ledger import Ledger, ledger_path
    from tf_serving_platform.serving.engine.remote import ModelProcess, RemoteReloads, RemoteService
    from tf_serving_platform.serving.engine.tracing import Tracing

    loop = asyncio.get_running_loop()
    model = ModelProcess()
    await loop.create_unix_connection(lambda: model.channel, socket_path)
    async with asyncio.timeout(SETTINGS_TIMEOUT_S):
        await model.got_settings.wait()
    settings, count = model.settings, model.front_end_count
    options = settings.options
    log_format.configure(options.log_format)
    tracing = Tracing.from_settings(options.tracing_otlp_endpoint)
    service = RemoteService(model)
    front_ends = FrontEnds(settings, service, model.health, RemoteReloads(model),
                           service.metrics, Listeners(shared_ports=True, private=False),
                           share=count, decoder_processes=1, tracing=tracing,
                           ledger=Ledger(ledger_path(Path(socket_path).parent), count + 1,
                                         slot=index))
    await front_ends.start(announce=False)
    model.channel.send(("listening",))
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    lost = asyncio.create_task(model.lost.wait())
    await asyncio.wait({lost, asyncio.create_task(stop.wait())},
                       return_when=asyncio.FIRST_COMPLETED)
    model.health.shutting_down = True
    if lost.done():
        log.error("front-end process %d: the model process is gone; stopping", index)
    await front_ends.stop(0 if lost.done() else options.grace_period_seconds)
    model.records.send()  # the last metric records, before the channel closes
    model.channel.close()
    await asyncio.to_thread(tracing.shutdown)  # the spans still queued leave
    return 1 if lost.done() else 0


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    socket_path, index = sys.argv[1], int(sys.argv[2])
    protos_only()
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(serve(socket_path, index))


if __name__ == "__main__":
    sys.exit(main())
