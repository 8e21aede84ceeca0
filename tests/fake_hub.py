"""A small, real HTTP server on 127.0.0.1 that plays the Hugging Face Hub for the tests.

It answers what huggingface_hub 2.x asks (read from its code): ``GET /api/models`` (search),
``GET /api/models/OWNER/NAME[/revision/REV]?blobs=true`` (files with size, git blob id and
LFS sha256), ``HEAD``/``GET /OWNER/NAME/resolve/REV/PATH`` with ``X-Repo-Commit``, ``ETag``,
``X-Linked-Etag``, ``X-Linked-Size``, ``Content-Length`` and byte ``Range`` support, and the
Hub's error headers (``X-Error-Code``). Faults can be switched on per file: drop the
connection after N bytes, flip one byte, send slowly (``throttle``); ``listed_sizes`` lists
huge files that are never served (for memory-fit verdicts). Every request is logged for the tests to inspect.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".gguf", ".safetensors", ".bin")


def git_blob_id(data: bytes) -> str:
    digest = hashlib.sha1(b"blob %d\0" % len(data))
    digest.update(data)  # no copy of the data (a copy holds the GIL)
    return digest.hexdigest()


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, bytes]
    commit: str
    downloads: int = 0
    likes: int = 0
    tags: list[str] = field(default_factory=list)
    library: str | None = None
    private: bool = False
    gated: bool = False
    extra_listing: list[str] = field(default_factory=list)  # names listed but not served
    listed_sizes: dict[str, int] = field(default_factory=dict)  # listed, never served (huge)
    # (data, git blob id, sha256) per path: hashed once, as the Hub stores them, not per
    # request (hashing a 100 MB file holds this process's GIL, which the GUI tests share)
    _digests: dict[str, tuple[bytes, str, str]] = field(default_factory=dict, repr=False)

    def digests(self, path: str) -> tuple[str, str]:
        data = self.files.get(path, b"")
        known = self._digests.get(path)
        if known is None or known[0] is not data:
            known = (data, git_blob_id(data), hashlib.sha256(data).hexdigest())
            self._digests[path] = known
        return known[1], known[2]

    def is_lfs(self, path: str) -> bool:
        return path.endswith(LFS_SUFFIXES) or len(self.files[path]) > 4096

    def sibling(self, path: str) -> dict[str, Any]:
        data = self.files.get(path, b"")
        blob_id, sha256 = self.digests(path)
        entry: dict[str, Any] = {"rfilename": path, "size": len(data), "blobId": blob_id}
        if path in self.files and self.is_lfs(path):
            entry["lfs"] = {"size": len(data), "sha256": sha256, "pointerSize": 134}
        return entry

    def info(self, with_files: bool) -> dict[str, Any]:
        names = list(self.files) + self.extra_listing
        siblings = [self.sibling(p) if with_files else {"rfilename": p} for p in names]
        for name, size in self.listed_sizes.items():
            fake_sha = hashlib.sha256(name.encode()).hexdigest()
            siblings.append(
                {
                    "rfilename": name,
                    "size": size,
                    "blobId": git_blob_id(name.encode()),
                    "lfs": {"size": size, "sha256": fake_sha, "pointerSize": 134},
                }
                if with_files
                else {"rfilename": name}
            )
        return {
            "_id": self.commit[:24],
            "id": self.repo_id,
            "modelId": self.repo_id,
            "author": self.repo_id.split("/")[0],
            "sha": self.commit,
            "downloads": self.downloads,
            "likes": self.likes,
            "tags": self.tags,
            "library_name": self.library,
            "private": self.private,
            "gated": "manual" if self.gated else False,
            "disabled": False,
            "siblings": siblings,
            "lastModified": "2025-01-01T00:00:00.000Z",
            "createdAt": "2025-01-01T00:00:00.000Z",
        }


class FakeHub:
    """``with FakeHub() as hub: hub.add_repo(...); os.environ["HF_ENDPOINT"] = hub.url``."""

    def __init__(self, token: str = "hf_test_token") -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.token = token
        self.log: list[tuple[str, str, dict[str, str]]] = []
        self.drop_after: dict[str, list[int]] = {}  # path -> byte counts, one per future GET
        self.flip_byte: set[str] = set()  # paths served with one byte changed
        self.bytes_served: dict[str, int] = {}
        self.throttle: dict[str, float] = {}  # path -> seconds to wait after each 64 KiB sent
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- set-up -----------------------------------------------------------------------------
    def add_repo(self, repo_id: str, files: dict[str, bytes], **kw: Any) -> FakeRepo:
        digest = hashlib.sha1(repo_id.encode())
        for name in sorted(files):
            digest.update(name.encode() + b"\0")
            digest.update(files[name])
        commit = digest.hexdigest()
        repo = FakeRepo(repo_id, dict(files), commit, **kw)
        for name in files:
            repo.digests(name)  # hashed now, before a test measures anything
        self.repos[repo_id] = repo
        return repo

    def add_repo_dir(self, repo_id: str, folder: Path, **kw: Any) -> FakeRepo:
        files = {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        return self.add_repo(repo_id, files, **kw)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what happened ----------------------------------------------------------------------
    def gets(self, path_part: str) -> list[dict[str, str]]:
        """Headers of every file GET whose URL contains ``path_part``."""
        with self._lock:
            return [h for m, p, h in self.log if m == "GET" and "/resolve/" in p and path_part in p]

    def record(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.log.append((method, path, headers))


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing ---------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, status: int = 200) -> None:
        self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json"})

    def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        headers = {
            "X-Error-Code": code,
            "X-Error-Message": message,
            "Content-Type": "application/json",
        }
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(status, json.dumps({"error": message}).encode(), headers)

    def _authorized(self, repo: FakeRepo) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.fake.token}"

    def _repo_or_error(self, repo_id: str, for_file: bool) -> FakeRepo | None:
        repo = self.fake.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        if repo.private and not self._authorized(repo):
            self._error(401, "RepoNotFound", "Invalid username or password.")
            return None
        if repo.gated and for_file and not self._authorized(repo):
            self._error(
                401, "GatedRepo", "Access to model is restricted. You must be authenticated."
            )
            return None
        return repo

    # -- routes -----------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def _route(self) -> None:
        url = urlsplit(self.path)
        self.fake.record(self.command, self.path, dict(self.headers))
        path = unquote(url.path)
        query = parse_qs(url.query)
        if path in ("", "/"):
            return self._send(200, b"fake hub")
        if path == "/api/models":
            return self._search(query)
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+?)(?:/revision/([^/]+))?", path)
        if m:
            return self._info(m.group(1), m.group(2), "blobs" in query)
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m:
            return self._file(m.group(1), m.group(2), m.group(3))
        self._error(404, "NotFound", f"no route {path}")

    def _search(self, query: dict[str, list[str]]) -> None:
        words = (query.get("search") or [""])[0].lower()
        wanted = set(query.get("filter", []))
        limit = int((query.get("limit") or ["1000"])[0])
        hits = [
            r
            for r in self.fake.repos.values()
            if not r.private
            and words in r.repo_id.lower()
            and all(t in r.tags or t == r.library for t in wanted)
        ]
        if (query.get("sort") or [""])[0] == "downloads":
            hits.sort(key=lambda r: r.downloads, reverse=True)
        out = []
        for r in hits[:limit]:
            info = r.info(with_files=False)
            out.append(
                {
                    k: info[k]
                    for k in (
                        "_id",
                        "id",
                        "modelId",
                        "downloads",
                        "likes",
                        "tags",
                        "library_name",
                        "gated",
                        "private",
                        "lastModified",
                    )
                }
            )
        self._json(out)

    def _info(self, repo_id: str, revision: str | None, blobs: bool) -> None:
        repo = self._repo_or_error(repo_id, for_file=False)
        if repo is None:
            return
        if revision not in (None, "main", repo.commit):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        self._json(repo.info(with_files=blobs))

    def _file(self, repo_id: str, revision: str, name: str) -> None:
        repo = self._repo_or_error(repo_id, for_file=True)
        if repo is None:
            return
        if revision not in ("main", repo.commit):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        if name not in repo.files:
            return self._error(404, "EntryNotFound", f"{name} does not exist", commit=repo.commit)
        data = repo.files[name]
        total = len(data)
        headers = {
            "X-Repo-Commit": repo.commit,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        blob_id, sha = repo.digests(name)
        if repo.is_lfs(name):
            headers.update(
                {"ETag": f'"{sha}"', "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(total)}
            )
        else:
            headers["ETag"] = f'"{blob_id}"'
        if self.command == "HEAD":
            return self._head(headers, total)
        if name in self.fake.flip_byte:
            data = bytearray(data)
            data[total // 2] ^= 0xFF
            data = bytes(data)
        start = 0
        status = 200
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d+)-", rng.strip())
            if not m or int(m.group(1)) >= total:
                return self._error(416, "RangeNotSatisfiable", "bad range")
            start = int(m.group(1))
            status = 206
            headers["Content-Range"] = f"bytes {start}-{total - 1}/{total}"
        body = data[start:]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with self.fake._lock:
            drops = self.fake.drop_after.get(name)
            cut = drops.pop(0) if drops else None
        if cut is not None and cut < len(body):
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self._count(name, cut)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        delay = self.fake.throttle.get(name)
        if delay:
            try:
                for i in range(0, len(body), 65536):
                    self.wfile.write(body[i : i + 65536])
                    self.wfile.flush()
                    self._count(name, len(body[i : i + 65536]))
                    time.sleep(delay)
            except OSError:  # the client stopped reading (paused or cancelled)
                self.close_connection = True
            return
        self.wfile.write(body)
        self._count(name, len(body))

    def _head(self, headers: dict[str, str], total: int) -> None:
        self.send_response(200)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(total))
        self.end_headers()

    def _count(self, name: str, n: int) -> None:
        with self.fake._lock:
            self.fake.bytes_served[name] = self.fake.bytes_served.get(name, 0) + n


# -- tiny real models for the fake Hub to serve ----------------------------------------------


def tiny_gguf(
    path: Path, file_type: int, *, seed: int = 0, n: int = 131_072, split: bool = False
) -> list[Path]:
    """A small valid GGUF (about 0.5 MB of float32 weights); ``split`` writes two shards."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama", **({"split_max_tensors": 1} if split else {}))
    writer.add_name("Tiny Test")
    writer.add_context_length(128)
    writer.add_file_type(file_type)
    half = n // 2 if split else n
    writer.add_tensor(
        "token_embd.weight", rng.standard_normal(half, dtype=np.float32).reshape(256, -1)
    )
    if split:
        writer.add_tensor(
            "output.weight", rng.standard_normal(half, dtype=np.float32).reshape(256, -1)
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if split:
        return sorted(path.parent.glob(path.stem + "-0000*-of-*.gguf"))
    return [path]


def tiny_hf_folder(folder: Path, *, seed: int = 0) -> dict[str, bytes]:
    """A small valid transformers-style folder: config, safetensors weights, tokenizer."""
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    save_file(
        {"model.embed_tokens.weight": rng.standard_normal((256, 64), dtype=np.float32)},
        str(folder / "model.safetensors"),
    )
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 64,
        "num_hidden_layers": 1,
        "vocab_size": 256,
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "BPE"}}))
    return {p.name: p.read_bytes() for p in folder.iterdir()}
