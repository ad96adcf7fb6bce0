"""The reference profile of a version: its reference rows and the model's outputs on them,
as the columns the capture samples (`ferry.monitor.columns`), profiled once
(`ferry.monitor.profile`) and stored with the version, so drift never re-reads the data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ferry.monitor.columns import input_columns, output_columns
from ferry.monitor.profile import Profile, build_profile
from ferry.runtime.feeds import to_feeds
from ferry.runtime.predictor import GraphPredictor, Predictor
from ferry.signature import Signature


def reference_profile(signature: Signature, arrays: Mapping[str, Any],
                      outputs: Mapping[str, Any]) -> Profile:
    """`arrays`: the model's input tensors by name; `outputs`: its output tensors by name."""
    return build_profile(input_columns(signature, arrays),
                         outputs=output_columns(signature, outputs))


def profile_of(predictor: Predictor, rows: Any) -> Profile:
    """The profile of `rows` (a sample, or a larger reference set) and of the predictor's
    outputs on them, as the served version computes them."""
    signature = predictor.signature
    arrays = to_feeds(signature, rows)
    if isinstance(predictor, GraphPredictor):
        outputs = predictor.run_feeds(arrays)
    else:
        by_role = predictor.outputs(rows)
        outputs = {spec.name: by_role[spec.role] for spec in signature.outputs
                   if spec.role is not None and spec.role in by_role}
    return reference_profile(signature, arrays, outputs)


def profile_bytes(profile: Profile) -> bytes:
    return orjson.dumps(profile.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)


def profile_from_bytes(data: bytes) -> Profile:
    return Profile.from_dict(orjson.loads(data))
