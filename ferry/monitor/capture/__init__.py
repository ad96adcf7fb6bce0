"""Capture: what the server records of every request, off the request path.

    settings   CaptureSettings and its defaults (light: the CLI reads them for --help)
    queue      Capture: the bounded queue, drops counted, the writer thread
    sampler    which rows are kept (all up to a cap per second, then a reservoir)

Import the modules themselves (`ferry.monitor.capture.queue`): this package's own import is
empty, so reading the settings costs nothing. The server adapts its request records to
`Captured` (`ferry.serve.capture`); this package knows nothing of the server.
"""
