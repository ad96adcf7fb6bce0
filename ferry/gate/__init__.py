"""The promotion gate and the test suite of one version.

    checks        Check, Verdict, Kind, Scores: what every part hands back
    compare       ferry.compare: candidate against baseline on hold-out rows -> GateResult
    quality, metrics, conditions, slices, bias, compat     the model's checks
    performance   latency, throughput and cost, in process and through the server
    promote       ferry.promote: move an alias only through the gate
    perturb, robustness, cases                             `ferry test`'s robustness part
    report        the HTML report

Like `ferry.monitor`, this package imports nothing heavy until a function runs.
"""
