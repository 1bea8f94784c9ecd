# The official Locust image plus what loadtest/locustfile.py imports beyond Locust itself:
# grpcio (its gRPC user; `grpc.experimental.gevent` is imported at module level), numpy and
# orjson and pysimdjson (request bodies, through serving/codec/). The project's code is not copied
# in: docker-compose.yml mounts ./loadtest and ./serving as tf_serving_platform's on PYTHONPATH.
# Versions: the ones the project's own .venv resolves from pyproject.toml.
FROM locustio/locust:2.47.0

# Into Locust's own interpreter (`python` is first on the image's PATH), as root because its
# site-packages belong to root; the image runs as its `locust` user again afterwards.
USER root
RUN python -m pip install --no-cache-dir grpcio==1.85.1 numpy==2.4.6 orjson==3.13.0 \
    pysimdjson==7.0.2
USER locust
