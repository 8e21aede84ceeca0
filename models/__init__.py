"""The model library: formats, validation, the catalog. Imports nothing else of Fireside's."""

from .bundled import BUNDLED_ID
from .catalog import Catalog, resolve
from .errors import (
    Cancelled,
    DiskFull,
    FiresideError,
    InvalidModelFile,
    LibraryError,
    ModelNotFound,
    UnsupportedModel,
)
from .fit import FitEstimate
from .fit import estimate as estimate_fit
from .gguf import GGUFInfo, read_gguf
from .gguf_model import read_gguf_model
from .hf import (
    HFCheckpoint,
    SafetensorsTensor,
    is_hf_folder,
    read_hf_config,
    read_hf_folder,
    read_safetensors_header,
    require_architecture,
)
from .library import import_model, remove_model
from .recognize import describe, find_models
from .records import ModelRecord
from .stores import scan as scan_stores

__all__ = [
    "BUNDLED_ID",
    "Cancelled",
    "DiskFull",
    "Catalog",
    "FiresideError",
    "FitEstimate",
    "GGUFInfo",
    "HFCheckpoint",
    "InvalidModelFile",
    "LibraryError",
    "ModelNotFound",
    "ModelRecord",
    "SafetensorsTensor",
    "UnsupportedModel",
    "describe",
    "estimate_fit",
    "find_models",
    "import_model",
    "is_hf_folder",
    "read_gguf",
    "read_gguf_model",
    "read_hf_config",
    "read_hf_folder",
    "read_safetensors_header",
    "remove_model",
    "require_architecture",
    "resolve",
    "scan_stores",
]
