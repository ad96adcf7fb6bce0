"""Watch: what the server saw, kept for `ferry monitor` and `ferry traffic`.

    events    the records: one InferenceEvent per request, SampledRows of its features and
              predictions, and the MonitorResult the drift job writes back
    store/    where they are kept: the MonitoringStore interface and its backends (memory,
              embedded SQLite, PostgreSQL), opened by URL with `open_store`
    profile   the reference statistics a model version is compared against
    drift/    the detectors and the evaluation of one window
    capture/  the bounded queue and sampler behind the server's capture
    columns, reference   tensors as named columns; the profile stored with each version
    job, api, report     a window evaluated; `ferry.monitor(uri, ...)`; the HTML report
    feedback, performance, staleness, traffic, request_log   labels and what they tell

`ferry.monitor` is this package and, called, the drift report (`ferry.monitor.api.monitor`):
a function of that name would be hidden by the package as soon as anything imported it, so
the package's module object answers the call.
"""

from __future__ import annotations

from ferry.lazy import callable_package

callable_package(__name__, "ferry.monitor.api:monitor")
