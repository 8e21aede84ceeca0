"""The Hugging Face Hub: search, pull (resumable, verified), offline mode. Qt-free.

Import this subpackage only when the Hub is needed: it brings huggingface_hub in (lazily,
inside the functions that talk to the network).
"""

from .config import (
    apply_offline_mode,
    cache_dir,
    endpoint,
    enforce_offline,
    is_offline,
    read_settings,
    relax_offline,
    set_offline_setting,
)
from .download import Meter, PullPlan, PullResult, parse_ref, plan_pull, pull, pull_plan
from .errors import (
    DiskFull,
    DownloadVerificationFailed,
    HubAccessDenied,
    HubBadListing,
    HubError,
    HubOffline,
    HubRepoNotFound,
    HubUnreachable,
    NothingToDownload,
)
from .listing import (
    GGUFVariant,
    RemoteFile,
    RepoListing,
    check_filename,
    gguf_variants,
    select_files,
)
from .queue import DownloadQueue
from .queue import Entry as DownloadEntry
from .search import Offer, SearchResult, fit_verdict, recommend, search

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
