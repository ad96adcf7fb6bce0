"""Every error ferry raises on purpose.

    FerryError                       root: catch this to catch everything below
    ├── InvalidInputError (ValueError)   the caller gave something wrong; fix the call
    │   ├── InvalidNameError             a model or alias name that cannot be used
    │   ├── InvalidURIError              a model URI that does not parse
    │   ├── SampleMismatchError          sample or input columns that do not fit the model
    │   ├── UnsafeFileError              a pickle or stored steps the user did not say to trust
    │   ├── RequestTooLargeError         a request body over the server's limit
    │   └── RequestTimeoutError          a request body not sent within the server's timeout
    ├── NotFoundError (LookupError)
    │   ├── ModelNotFoundError
    │   ├── VersionNotFoundError
    │   └── AliasNotFoundError
    ├── ConversionError                  the model could not be carried to ONNX
    │   ├── UnknownFrameworkError (InvalidInputError)
    │   ├── UnsupportedModelError        no converter handles this estimator
    │   └── ConversionCheckError         ONNX outputs differ from the original's
    ├── ArtifactError
    │   ├── CorruptArtifactError         checksum mismatch or unreadable bytes
    │   └── MissingArtifactError
    ├── RegistryError                    the metadata store refused or failed
    ├── MonitoringStoreError             the monitoring store cannot be opened or written
    ├── BatchRunError                    a batch run failed (an unreadable file, repeated keys)
    ├── StepError                        a stored pre/post step cannot load or failed on its own
    ├── NotFittedError (AttributeError)  a drift detector scored before it was fitted
    └── ServingError                     the server cannot answer this request now
        ├── ModelNotReadyError           known, but not loaded (loading, unloaded, failed)
        ├── ServerOverloadedError        the queue is full: retry after `retry_after_s`
        ├── InferenceTimeoutError        the request waited past its deadline
        ├── UnauthorizedError            a locked endpoint without the right token
        └── InferenceError               the model itself failed on valid input

Errors carry the model name and version where they concern one, and their message says
what to do about them. Transports (CLI, HTTP, gRPC) map these classes to exit codes and
status codes at their edge; nothing here knows about them.
"""

from __future__ import annotations


class FerryError(Exception):
    """Root of every error ferry raises on purpose."""

    def __init__(self, message: str, *, model: str | None = None, version: int | None = None):
        super().__init__(message)
        self.model = model
        self.version = version


class InvalidInputError(FerryError, ValueError):
    """The caller passed a value ferry cannot use."""


class InvalidNameError(InvalidInputError):
    """A model or alias name that is empty, too long or has forbidden characters."""


class InvalidURIError(InvalidInputError):
    """A model URI that is not `name`, `name:VERSION` or `name@ALIAS`."""


class SampleMismatchError(InvalidInputError):
    """Sample or input data whose columns or shape do not fit the model."""


class UnsafeFileError(InvalidInputError):
    """A file that would run code when loaded (a pickle, a version's stored pre/post steps)
    and was not explicitly trusted."""


class RequestTooLargeError(InvalidInputError):
    """A request body larger than the server accepts."""


class RequestTimeoutError(InvalidInputError):
    """A client that did not send its whole request within the server's request timeout."""


class BatchRunError(FerryError):
    """A batch scoring run failed: an input file that cannot be read, keys that repeat, a
    target that refused the rows. Earlier results stay as they were."""


class StepError(FerryError):
    """A stored pre/post-processing step that cannot be loaded (a package missing) or that
    failed for a reason other than its input (a bug in the step)."""


class NotFoundError(FerryError, LookupError):
    """Something named by the caller does not exist in the registry."""


class ModelNotFoundError(NotFoundError):
    """No registered model has this name."""


class VersionNotFoundError(NotFoundError):
    """The model exists but has no such version."""


class AliasNotFoundError(NotFoundError):
    """The model exists but has no such alias."""


class ConversionError(FerryError):
    """The model could not be carried to ONNX."""


class UnknownFrameworkError(ConversionError, InvalidInputError):
    """The framework named or detected is not one ferry knows."""


class UnsupportedModelError(ConversionError):
    """No converter handles this model; register it natively with `force=True`."""


class ConversionCheckError(ConversionError):
    """The ONNX form's outputs are outside tolerance of the original's."""


class ArtifactError(FerryError):
    """A stored artifact cannot be used."""


class CorruptArtifactError(ArtifactError):
    """An artifact's bytes do not match the checksum recorded at registration."""


class MissingArtifactError(ArtifactError):
    """An artifact recorded in the registry is not in the artifact store."""


class RegistryError(FerryError):
    """The metadata store refused or failed an operation."""


class ServingError(FerryError):
    """The server cannot answer this request now."""


class ModelNotReadyError(ServingError):
    """The model is known but not loaded: loading, unloaded or failed to load."""


class ServerOverloadedError(ServingError):
    """The model's queue is full; the client should retry after `retry_after_s` seconds."""

    def __init__(self, message: str, *, model: str | None = None, version: int | None = None,
                 retry_after_s: float = 1.0):
        super().__init__(message, model=model, version=version)
        self.retry_after_s = retry_after_s


class InferenceTimeoutError(ServingError):
    """A request waited longer than its deadline."""


class UnauthorizedError(ServingError):
    """A locked endpoint was called without the right bearer token."""


class InferenceError(ServingError):
    """The model failed on input that passed validation (a bug or limit inside the model)."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, for errors that wrap a library's."""
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


class NotFittedError(FerryError, AttributeError):
    """A drift detector's `score` was called before its `fit`."""


class MonitoringStoreError(FerryError):
    """The monitoring store (`ferry.monitor.store`) cannot be opened or written."""
