"""The data plane: what every transport asks of the server, with no HTTP or gRPC in it.

The REST and gRPC adapters decode a request into `ferry.serve.types`, call one method here,
and encode the answer; errors are `ferry.errors` classes that `ferry.serve.outcomes` maps for
both. Inference is two steps so that the HTTP front end can answer from a callback:
`served()` resolves the model (the request recorder labels the request with it), then
`begin_infer()` queues the request and returns its `PendingInference`; `infer()` does both
and waits. Stored predictions (`stored()`) are looked up in the latest batch runs' rows,
without a model.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import TYPE_CHECKING, Any

import pandas as pd

from ferry import __version__
from ferry.batch.stored import StoredPredictions
from ferry.errors import InvalidInputError, UnauthorizedError
from ferry.monitor.feedback import FeedbackResult, attach, labels_from_document
from ferry.serve.batching import Arrays
from ferry.serve.model import PendingInference, ServedModel
from ferry.serve.model_config import ModelConfig, load_override, platform_of
from ferry.serve.recorder import CaptureSink
from ferry.serve.repository import ModelRepository
from ferry.serve.settings import SERVER_NAME, ServeSettings
from ferry.serve.statistics import ModelStatistics
from ferry.serve.types import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    RepositoryEntry,
    ServerMetadata,
)

if TYPE_CHECKING:
    from ferry.monitor.store import MonitoringStore

EXTENSIONS = ("binary_tensor_data", "model_repository", "statistics", "model_configuration")


class DataPlane:
    def __init__(self, repository: ModelRepository, settings: ServeSettings,
                 capture: CaptureSink | None = None, store: MonitoringStore | None = None):
        self.repository = repository
        self.settings = settings
        self.ready = False
        self.capture = capture
        """Where the transports' recorders send closed requests (None: not captured)."""
        self.store = store
        """The store the capture writes to, where feedback attaches labels (None: no
        capture)."""
        self._stored: StoredPredictions | None = None

    def live(self) -> bool:
        return True

    def server_ready(self) -> bool:
        return self.ready

    def server_metadata(self) -> ServerMetadata:
        return ServerMetadata(SERVER_NAME, __version__, EXTENSIONS)

    def model_ready(self, name: str, version: str | None = None) -> bool:
        self.repository.get(name, version)
        return True

    def model_metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        served = self.repository.get(name, version)
        return served.metadata(self.repository.versions(name))

    def served(self, name: str, version: str | None = None) -> ServedModel:
        return self.repository.get(name, version)

    def begin_infer(self, served: ServedModel, request: InferenceRequest) -> PendingInference:
        """Check the request and queue it on the model's batcher."""
        return served.begin(request, self.settings.request_timeout_s)

    async def infer(self, name: str, version: str | None,
                    request: InferenceRequest) -> InferenceResponse:
        pending = self.begin_infer(self.served(name, version), request)
        await pending.future
        return pending.response()

    async def predict(self, served: ServedModel, rows: pd.DataFrame) -> Arrays:
        """Named rows through the model (`/predict`), mapped through its signature."""
        arrays, count = served.arrays_from_rows(rows)
        return await served.batcher.submit(arrays, count, self.settings.request_timeout_s)

    def model_config(self, name: str, version: str | None = None) -> ModelConfig:
        served = self.repository.get(name, version)
        platform, backend = platform_of(served.version.runtime)
        return ModelConfig(served.name, platform, backend, served.input_metadata,
                           served.output_metadata, served.batching,
                           round(self.settings.request_timeout_s * 1e6))

    def statistics(self, name: str = "", version: str | None = None) -> list[ModelStatistics]:
        """Every served version's statistics, one model's, or one version's."""
        if not name:
            return [served.statistics for served in self.repository.served_models()]
        if version:
            return [self.repository.get(name, version).statistics]
        self.repository.get(name)  # an unknown model is an error, not an empty list
        return [served.statistics for served in self.repository.served_models(name)]

    def repository_index(self) -> list[RepositoryEntry]:
        return self.repository.index()

    async def load(self, name: str, token: str | None,
                   parameters: dict[str, Any] | None = None) -> None:
        """Load or reload a model; `parameters` may carry a configuration override."""
        self._authorize(token)
        batching = load_override(name, parameters or {}, self.settings.batching)
        await self.repository.load(name, batching)

    async def unload(self, name: str, token: str | None) -> None:
        self._authorize(token)
        await self.repository.unload(name)

    async def feedback(self, name: str, version: str | None, document: Any,
                       token: str | None) -> FeedbackResult:
        """Attach the true labels of a feedback body to captured requests; the served
        version's signature checks them (`ferry.monitor.feedback`)."""
        self._authorize(token)
        if self.store is None:
            raise InvalidInputError("feedback needs the capture, and this server runs without "
                                    "it (--no-capture): no request was recorded to label")
        served = self.repository.get(name, version)
        labels = labels_from_document(document)
        return await asyncio.to_thread(attach, self.store, served.version, labels)

    def stored(self) -> StoredPredictions:
        """The stored predictions of batch runs, set up (with its loader threads) at the first
        lookup."""
        if self._stored is None:
            self._stored = StoredPredictions(self.repository.registry,
                                             self.settings.stored_refresh_s)
        return self._stored

    def close(self) -> None:
        """Stop the stored predictions' loads (at shutdown)."""
        if self._stored is not None:
            self._stored.close()

    def _authorize(self, token: str | None) -> None:
        expected = self.settings.admin_token
        if expected and not (token and hmac.compare_digest(token, expected)):
            raise UnauthorizedError("the repository and feedback endpoints need the server's"
                                    " bearer token (Authorization: Bearer ...)")
