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
from .hf import (
    HFCheckpoint,
    SafetensorsTensor,
    is_hf_folder,
    read_hf_config,
    read_hf_folder,
    read_safetensors_header,
    require_architecture,
)
from .inspect import describe
from .records import ModelRecord

__all__ = [
    "BUNDLED_ID",
    "Cancelled",
    "Catalog",
    "FiresideError",
    "GGUFInfo",
    "HFCheckpoint",
    "InvalidModelFile",
    "LibraryError",
    "ModelNotFound",
    "ModelRecord",
    "SafetensorsTensor",
    "UnsupportedModel",
    "describe",
    "is_hf_folder",
    "read_gguf",
    "read_hf_config",
    "read_hf_folder",
    "read_safetensors_header",
    "require_architecture",
    "resolve",
]
