# The embedded engine's image: `servectl serve` (TensorFlow Serving's flags and APIs, plus the
# Open Inference Protocol with --enable_v2_protocol) on a Python slim base, for KServe
# (k8s/kserve/) and anywhere TensorFlow Serving publishes no image (ARM64 nodes).
#   docker build -t ghcr.io/tf-serving-platform/servectl:0.1.0 .   (the image k8s/kserve names)
# The container runs as a non-root user with a read-only root filesystem: nothing is written
# outside /tmp (an emptyDir in k8s/kserve) and the model volume.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp

WORKDIR /src
COPY pyproject.toml README.md ./
COPY models ./models
COPY export ./export
COPY serving ./serving
COPY servectl ./servectl
COPY loadtest ./loadtest
# The project, then tritonclient's protocol stubs without its protobuf<7 pin (its generated
# code runs on the protobuf 7 the rest needs; see the Makefile's TRITONCLIENT).
RUN python -m pip install . && python -m pip install --no-deps tritonclient==2.73.0 \
    && rm -rf /src

RUN groupadd --gid 10001 serving && useradd --uid 10001 --gid 10001 --no-create-home \
    --shell /usr/sbin/nologin serving
USER 10001:10001
WORKDIR /tmp
EXPOSE 8500 8501
ENTRYPOINT ["servectl", "serve"]
CMD ["--help"]
