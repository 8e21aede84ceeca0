"""The model library: formats, validation, the catalog. Imports nothing else of Fireside's.

The names below load with the module that holds them, on first use: a one-shot
``fireside chat`` needs the catalog, not the importers, converters' readers or fit tables.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> (module, attribute there)
_WHERE = {
    "BUNDLED_ID": ("bundled", "BUNDLED_ID"),
    "Catalog": ("catalog", "Catalog"),
    "resolve": ("catalog", "resolve"),
    "Cancelled": ("errors", "Cancelled"),
    "DiskFull": ("errors", "DiskFull"),
    "FiresideError": ("errors", "FiresideError"),
    "InvalidModelFile": ("errors", "InvalidModelFile"),
    "LibraryError": ("errors", "LibraryError"),
    "ModelNotFound": ("errors", "ModelNotFound"),
    "UnsupportedModel": ("errors", "UnsupportedModel"),
    "FitEstimate": ("fit", "FitEstimate"),
    "estimate_fit": ("fit", "estimate"),
    "GGUFInfo": ("gguf", "GGUFInfo"),
    "read_gguf": ("gguf", "read_gguf"),
    "read_gguf_model": ("gguf_model", "read_gguf_model"),
    "HFCheckpoint": ("hf", "HFCheckpoint"),
    "SafetensorsTensor": ("hf", "SafetensorsTensor"),
    "is_hf_folder": ("hf", "is_hf_folder"),
    "read_hf_config": ("hf", "read_hf_config"),
    "read_hf_folder": ("hf", "read_hf_folder"),
    "read_safetensors_header": ("hf", "read_safetensors_header"),
    "require_architecture": ("hf", "require_architecture"),
    "import_model": ("library", "import_model"),
    "remove_model": ("library", "remove_model"),
    "describe": ("recognize", "describe"),
    "find_models": ("recognize", "find_models"),
    "ModelRecord": ("records", "ModelRecord"),
    "scan_stores": ("stores", "scan"),
}

__all__ = [
    "BUNDLED_ID",
    "Cancelled",
    "Catalog",
    "DiskFull",
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
]  # the names of _WHERE


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module 'models' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), attribute)
    globals()[name] = value
    return value


if TYPE_CHECKING:
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
