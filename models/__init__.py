"""The model library: formats, validation, the catalog. Imports nothing else of Fireside's."""

from .bundled import BUNDLED_ID
from .catalog import Catalog, resolve
from .errors import (
    Cancelled,
    FiresideError,
    InvalidModelFile,
    LibraryError,
    ModelNotFound,
    UnsupportedModel,
)
from .gguf import GGUFInfo, read_gguf
from .inspect import describe
from .records import ModelRecord

__all__ = [
    "BUNDLED_ID",
    "Cancelled",
    "Catalog",
    "FiresideError",
    "GGUFInfo",
    "InvalidModelFile",
    "LibraryError",
    "ModelNotFound",
    "ModelRecord",
    "UnsupportedModel",
    "describe",
    "read_gguf",
    "resolve",
]
