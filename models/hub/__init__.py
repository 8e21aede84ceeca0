"""The Hugging Face Hub: search, pull (resumable, verified), offline mode. Qt-free.

Import this subpackage only when the Hub is needed: it brings huggingface_hub in (lazily,
inside the functions that talk to the network). Its names load on first use (PEP 562), so
``from models.hub import apply_offline_mode`` at start-up reads the settings and nothing more.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {  # public name: (submodule, name there)
    "apply_offline_mode": ("config", "apply_offline_mode"),
    "cache_dir": ("config", "cache_dir"),
    "endpoint": ("config", "endpoint"),
    "enforce_offline": ("config", "enforce_offline"),
    "is_offline": ("config", "is_offline"),
    "read_settings": ("config", "read_settings"),
    "relax_offline": ("config", "relax_offline"),
    "set_offline_setting": ("config", "set_offline_setting"),
    "Meter": (".work", "Meter"),  # models.work
    "PullPlan": ("download", "PullPlan"),
    "PullResult": ("download", "PullResult"),
    "parse_ref": ("download", "parse_ref"),
    "plan_pull": ("download", "plan_pull"),
    "pull": ("download", "pull"),
    "pull_plan": ("download", "pull_plan"),
    "DiskFull": ("errors", "DiskFull"),
    "DownloadVerificationFailed": ("errors", "DownloadVerificationFailed"),
    "HubAccessDenied": ("errors", "HubAccessDenied"),
    "HubBadListing": ("errors", "HubBadListing"),
    "HubError": ("errors", "HubError"),
    "HubOffline": ("errors", "HubOffline"),
    "HubRepoNotFound": ("errors", "HubRepoNotFound"),
    "HubUnreachable": ("errors", "HubUnreachable"),
    "NothingToDownload": ("errors", "NothingToDownload"),
    "GGUFVariant": ("listing", "GGUFVariant"),
    "RemoteFile": ("listing", "RemoteFile"),
    "RepoListing": ("listing", "RepoListing"),
    "check_filename": ("listing", "check_filename"),
    "gguf_variants": ("listing", "gguf_variants"),
    "select_files": ("listing", "select_files"),
    "DownloadEntry": ("queue", "Entry"),
    "DownloadQueue": ("queue", "DownloadQueue"),
    "Offer": ("search", "Offer"),
    "SearchResult": ("search", "SearchResult"),
    "fit_verdict": ("search", "fit_verdict"),
    "recommend": ("search", "recommend"),
    "search": ("search", "search"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attr = _NAMES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


__all__ = [
    "apply_offline_mode",
    "DiskFull",
    "DownloadEntry",
    "DownloadQueue",
    "DownloadVerificationFailed",
    "GGUFVariant",
    "HubAccessDenied",
    "HubBadListing",
    "HubError",
    "HubOffline",
    "HubRepoNotFound",
    "HubUnreachable",
    "Meter",
    "NothingToDownload",
    "Offer",
    "PullPlan",
    "PullResult",
    "RemoteFile",
    "RepoListing",
    "SearchResult",
    "cache_dir",
    "check_filename",
    "endpoint",
    "enforce_offline",
    "fit_verdict",
    "gguf_variants",
    "is_offline",
    "parse_ref",
    "plan_pull",
    "pull",
    "pull_plan",
    "read_settings",
    "recommend",
    "search",
    "select_files",
    "relax_offline",
    "set_offline_setting",
]
