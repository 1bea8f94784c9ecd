"""Load tests of TensorFlow Serving endpoints with Locust, and what is made of their results.

``locustfile.py`` is the Locust side (users, load shape, raw-sample recording, SLO gate); it
is the only module that imports Locust. The rest is plain Python used by ``servectl loadtest``
and by the locustfile: ``signature`` (what the model takes), ``payloads`` (request bodies),
``protos`` (TensorFlow Serving's messages without the TensorFlow runtime), ``samples`` (raw
per-request records), ``stages`` (load shapes), ``stats`` (percentiles, stability), ``slo``
(the verdict), ``report`` (per level and protocol), ``sweep`` (curve and knee), ``plots``
(PNGs) and ``runner`` (Locust as a child process).
"""
