"""Watch: what the server saw, kept for `ferry monitor` and `ferry traffic`.

    events    the records: one InferenceEvent per request, SampledRows of its features and
              predictions, and the MonitorResult the drift job writes back
    store/    where they are kept: the MonitoringStore interface and its backends (memory,
              embedded SQLite, PostgreSQL), opened by URL with `open_store`
    profile   the reference statistics a model version is compared against
    drift/    the detectors and the evaluation of one window
"""
