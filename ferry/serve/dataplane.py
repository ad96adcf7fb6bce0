"""The data plane: what every transport asks of the server, with no HTTP or gRPC in it.

The REST and gRPC adapters decode a request into `ferry.serve.types`, call one method here,
and encode the answer; errors are `ferry.errors` classes that the adapters map at their edge.
"""

from __future__ import annotations

import hmac

from ferry import __version__
from ferry.errors import UnauthorizedError
from ferry.serve.repository import ModelRepository
from ferry.serve.settings import SERVER_NAME, ServeSettings
from ferry.serve.types import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    RepositoryEntry,
    ServerMetadata,
)

EXTENSIONS = ("binary_tensor_data", "model_repository")


class DataPlane:
    def __init__(self, repository: ModelRepository, settings: ServeSettings):
        self.repository = repository
        self.settings = settings
        self.ready = False

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

    async def infer(self, name: str, version: str | None,
                    request: InferenceRequest) -> InferenceResponse:
        served = self.repository.get(name, version)
        return await served.infer(request, self.settings.request_timeout_s)

    def repository_index(self) -> list[RepositoryEntry]:
        return self.repository.index()

    async def load(self, name: str, token: str | None) -> None:
        self._authorize(token)
        await self.repository.load(name)

    async def unload(self, name: str, token: str | None) -> None:
        self._authorize(token)
        await self.repository.unload(name)

    def _authorize(self, token: str | None) -> None:
        expected = self.settings.admin_token
        if expected and not (token and hmac.compare_digest(token, expected)):
            raise UnauthorizedError("the repository endpoints need the server's bearer token"
                                    " (Authorization: Bearer ...)")
