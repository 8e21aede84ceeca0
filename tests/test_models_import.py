"""Describing and importing every format a user might drop, and the bad inputs around them."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
from model_files import (
    build,
    llama_gguf,
    make_hf_folder,
    make_mlx_folder,
    make_split,
    safetensors_bytes,
)

import models
from models import Catalog, DiskFull, FiresideError, InvalidModelFile, LibraryError, ModelNotFound
from models import library as library_mod
from models.recognize import describe, find_models


@pytest.fixture
def catalog(fresh_home: Path) -> Catalog:
    cat = Catalog()
    yield cat
    cat.close()


def library_files(home: Path) -> list[Path]:
    return sorted(p for p in (home / "models").rglob("*") if p.is_file())


# -- describe: every format -------------------------------------------------------------------
def test_describe_gguf(tmp_path: Path) -> None:
    r = describe(llama_gguf(tmp_path / "tiny.gguf", n_ctx=1234))
    assert (r.format, r.architecture, r.context_length, r.has_chat_template) == (
        "gguf",
        "llama",
        1234,
        True,
    )
    assert r.parameters == 32 and r.size_bytes == (tmp_path / "tiny.gguf").stat().st_size


def test_describe_split_gguf(tmp_path: Path) -> None:
    parts = make_split(tmp_path / "s", count=2, prefix="big")
    r = describe(parts[0])
    assert r.format == "gguf-split" and r.id == "big"
    assert r.size_bytes == sum(p.stat().st_size for p in parts)
    assert r.extra["parts"] == [p.name for p in parts]


def test_describe_hf_safetensors_and_pytorch(tmp_path: Path) -> None:
    r = describe(make_hf_folder(tmp_path / "Tiny-Llama"))
    assert (r.format, r.architecture, r.quantization) == (
        "hf-safetensors",
        "LlamaForCausalLM",
        "BF16",
    )
    assert r.parameters == 100 * 64 + 64 * 64 + 64 and r.bits_per_weight > 16
    assert r.context_length == 4096 and r.has_chat_template and r.name == "Tiny-Llama"
    p = describe(make_hf_folder(tmp_path / "pt", weights="pytorch"))
    assert p.format == "hf-pytorch"


def test_describe_mlx(tmp_path: Path) -> None:
    r = describe(make_mlx_folder(tmp_path / "tiny-4bit"))
    assert r.format == "mlx" and r.quantization == "4-bit g32"
    assert r.parameters == 100 * 64 + 64  # packed uint32 weights unpacked, scales not counted


def test_mlx_config_without_mlx_weights(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelFile, match="packed layout"):
        describe(make_mlx_folder(tmp_path / "fake-mlx", packed=False))


def test_a_folder_of_several_models(tmp_path: Path) -> None:
    root = tmp_path / "drop"
    llama_gguf(root / "a.gguf")
    make_split(root / "split", count=2)
    make_hf_folder(root / "nested" / "hf")
    make_mlx_folder(root / "mlx")
    (root / "notes.txt").write_text("not a model")
    found, skipped = find_models(root)
    assert sorted(p.relative_to(root).as_posix() for p in found) == [
        "a.gguf",
        "mlx",
        "nested/hf",
        "split/tiny-00001-of-00002.gguf",
    ]
    assert skipped == []
    with pytest.raises(InvalidModelFile, match="holds 4 models"):
        describe(root)


# -- import: link, copy, twice, cancel -----------------------------------------------------------
def test_import_a_folder_of_several_models_links_each_once(
    tmp_path: Path, catalog: Catalog
) -> None:
    root = tmp_path / "drop"
    llama_gguf(root / "a.gguf")
    make_split(root / "split", count=2)
    make_hf_folder(root / "hf")
    make_mlx_folder(root / "mlx")
    before = len(catalog.list())
    records = models.import_model(root, mode="link", catalog=catalog)
    assert sorted(r.format for r in records) == ["gguf", "gguf-split", "hf-safetensors", "mlx"]
    assert all(r.source == "imported" and not r.owned for r in records)
    assert len(catalog.list()) == before + 4
    again = models.import_model(root, catalog=catalog)  # default mode, same files
    assert sorted(r.id for r in again) == sorted(r.id for r in records)
    assert len(catalog.list()) == before + 4
    assert library_files(catalog.db_path.parent) == []  # linked: nothing copied


def test_copy_is_hashed_owned_and_leaves_the_source(
    tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(library_mod, "COPY_CHUNK", 4096)
    src = llama_gguf(tmp_path / "src" / "tiny.gguf", data_bytes=64 * 1024)
    seen: list[tuple[int, int]] = []
    (rec,) = models.import_model(src, catalog=catalog, progress=lambda d, t: seen.append((d, t)))
    size = src.stat().st_size
    assert rec.owned and rec.provenance["mode"] == "copy"  # default for a file outside stores
    assert rec.provenance["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert rec.provenance["origin"] == str(src)
    copied = Path(rec.path)
    assert copied.read_bytes() == src.read_bytes() and copied.parent.parent.name == "models"
    assert len(seen) > 10 and seen[-1] == (size, size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    # Importing again, by copy or by link, gives back the same entry.
    assert models.import_model(src, mode="copy", catalog=catalog)[0].id == rec.id
    assert models.import_model(src, mode="link", catalog=catalog)[0].id == rec.id
    # The same bytes from another path are recognised by their hash.
    other = tmp_path / "elsewhere.gguf"
    other.write_bytes(src.read_bytes())
    assert models.import_model(other, mode="copy", catalog=catalog)[0].id == rec.id
    assert [p.name for p in library_files(catalog.db_path.parent)] == ["tiny.gguf"]


def test_copy_a_folder_model_and_a_split_model(tmp_path: Path, catalog: Catalog) -> None:
    hf = make_hf_folder(tmp_path / "Tiny-HF")
    (rec,) = models.import_model(hf, mode="copy", name="My tiny", catalog=catalog)
    assert rec.name == "My tiny" and rec.format == "hf-safetensors" and rec.owned
    assert sorted(rec.provenance["files"]) == sorted(p.name for p in hf.iterdir())
    assert (Path(rec.path) / "config.json").is_file()
    parts = make_split(tmp_path / "s", count=3)
    (split,) = models.import_model(parts[0], mode="copy", catalog=catalog)
    assert split.format == "gguf-split"
    assert sorted(p.name for p in Path(split.path).parent.iterdir()) == [p.name for p in parts]


def test_cancel_mid_copy_leaves_nothing(
    tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(library_mod, "COPY_CHUNK", 4096)
    src = llama_gguf(tmp_path / "tiny.gguf", data_bytes=256 * 1024)
    cancel = threading.Event()
    calls: list[int] = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 5:
            cancel.set()

    before = [r.id for r in catalog.list()]
    with pytest.raises(models.Cancelled):
        models.import_model(src, mode="copy", catalog=catalog, progress=progress, cancel=cancel)
    assert len(calls) == 5
    assert [r.id for r in catalog.list()] == before
    leftovers = list((catalog.db_path.parent / "models").iterdir())
    assert leftovers == [], leftovers
    assert src.stat().st_size > 256 * 1024  # the source is untouched


def test_not_enough_disk_space_is_said_before_copying(
    tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(library_mod, "DISK_MARGIN", 1 << 60)
    with pytest.raises(DiskFull, match="not enough free disk space"):
        models.import_model(llama_gguf(tmp_path / "t.gguf"), mode="copy", catalog=catalog)
    assert library_files(catalog.db_path.parent) == []


def test_link_is_the_default_inside_the_library(tmp_path: Path, catalog: Catalog) -> None:
    inside = llama_gguf(catalog.db_path.parent / "models" / "manual" / "m.gguf")
    (rec,) = models.import_model(inside, catalog=catalog)
    assert rec.provenance["mode"] == "link" and rec.owned and rec.path == str(inside)


# -- remove -----------------------------------------------------------------------------------------
def test_remove_deletes_only_what_the_library_owns(tmp_path: Path, catalog: Catalog) -> None:
    linked_src = llama_gguf(tmp_path / "linked.gguf")
    (linked,) = models.import_model(linked_src, mode="link", catalog=catalog)
    (copied,) = models.import_model(llama_gguf(tmp_path / "c" / "copied.gguf", name="c"),
                                    mode="copy", catalog=catalog)  # fmt: skip
    r1 = models.remove_model(linked.id, catalog=catalog)
    assert not r1.deleted_files and linked_src.is_file() and "left where they are" in r1.message()
    r2 = models.remove_model(copied.id, catalog=catalog)
    assert r2.deleted_files and not Path(copied.path).exists() and "deleted" in r2.message()
    assert library_files(catalog.db_path.parent) == []
    ids = {r.id for r in catalog.list()}
    assert linked.id not in ids and copied.id not in ids
    with pytest.raises(ModelNotFound):
        models.remove_model(copied.id, catalog=catalog)


def test_the_bundled_model_cannot_be_removed(catalog: Catalog) -> None:
    with pytest.raises(LibraryError, match="ships with Fireside"):
        models.remove_model(models.BUNDLED_ID, catalog=catalog)
    assert catalog.get(models.BUNDLED_ID)


# -- bad input: clear error, nothing registered -------------------------------------------------
def _assert_rejected(path: Path, catalog: Catalog, match: str) -> None:
    before = [r.id for r in catalog.list()]
    for mode in ("link", "copy"):
        with pytest.raises(FiresideError, match=match):
            models.import_model(path, mode=mode, catalog=catalog)
    assert [r.id for r in catalog.list()] == before
    assert library_files(catalog.db_path.parent) == []


def test_a_path_that_does_not_exist(tmp_path: Path, catalog: Catalog) -> None:
    _assert_rejected(tmp_path / "nope.gguf", catalog, "does not exist")


def test_an_hf_folder_with_no_weights(tmp_path: Path, catalog: Catalog) -> None:
    _assert_rejected(make_hf_folder(tmp_path / "empty", weights="none"), catalog, "no weights")


def test_weights_but_no_config(tmp_path: Path, catalog: Catalog) -> None:
    folder = make_hf_folder(tmp_path / "noconf")
    (folder / "config.json").unlink()
    _assert_rejected(folder, catalog, "no config.json")


def test_an_hf_folder_without_a_tokenizer(tmp_path: Path, catalog: Catalog) -> None:
    folder = make_hf_folder(tmp_path / "notok")
    (folder / "tokenizer.json").unlink()
    _assert_rejected(folder, catalog, "no tokenizer")


def test_safetensors_header_longer_than_the_file(tmp_path: Path, catalog: Catalog) -> None:
    folder = make_hf_folder(tmp_path / "badst")
    raw = bytearray((folder / "model.safetensors").read_bytes())
    raw[:8] = (len(raw) * 2).to_bytes(8, "little")
    (folder / "model.safetensors").write_bytes(bytes(raw))
    _assert_rejected(folder, catalog, "header claims")


def test_truncated_safetensors(tmp_path: Path, catalog: Catalog) -> None:
    folder = make_hf_folder(tmp_path / "cut")
    st = folder / "model.safetensors"
    st.write_bytes(st.read_bytes()[:-100])
    _assert_rejected(folder, catalog, "truncated")


def test_one_bad_model_in_a_folder_registers_none(tmp_path: Path, catalog: Catalog) -> None:
    root = tmp_path / "mixed"
    llama_gguf(root / "good.gguf")
    (root / "bad.gguf").write_bytes(build(n_kv=2**64 - 1))
    _assert_rejected(root, catalog, "1 of the 2 models")


def test_a_later_split_part_points_to_the_first(tmp_path: Path, catalog: Catalog) -> None:
    parts = make_split(tmp_path / "s", count=2)
    _assert_rejected(parts[1], catalog, "import the first part")


def test_a_folder_with_nothing_in_it(tmp_path: Path, catalog: Catalog) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("hi")
    _assert_rejected(tmp_path / "empty", catalog, "no models found")


def test_a_file_that_is_not_a_model(tmp_path: Path, catalog: Catalog) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * 100)
    _assert_rejected(tmp_path / "photo.jpg", catalog, "not a model Fireside recognises")


def test_a_symlink_loop(tmp_path: Path, catalog: Catalog) -> None:
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    a.symlink_to(b)
    b.symlink_to(a)
    _assert_rejected(a, catalog, "loop")


def test_a_folder_linking_to_itself_is_walked_once(tmp_path: Path, catalog: Catalog) -> None:
    root = tmp_path / "root"
    llama_gguf(root / "m.gguf")
    (root / "again").symlink_to(root)
    (root / "sub").mkdir()
    (root / "sub" / "up").symlink_to(root)
    found, _ = find_models(root)
    assert [p.name for p in found] == ["m.gguf"]
    assert len(models.import_model(root, mode="link", catalog=catalog)) == 1


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_a_folder_without_permission(tmp_path: Path, catalog: Catalog) -> None:
    locked = tmp_path / "locked"
    llama_gguf(locked / "m.gguf")
    locked.chmod(0)
    try:
        _assert_rejected(locked, catalog, "not allowed")
    finally:
        locked.chmod(0o755)


def test_a_folder_named_like_a_gguf_file(tmp_path: Path, catalog: Catalog) -> None:
    """A folder called x.gguf holding no model is refused, not read as a file."""
    fake = tmp_path / "fake.gguf"
    fake.mkdir()
    (fake / "x").write_text("x")
    _assert_rejected(fake, catalog, "no models found")


def test_an_unknown_import_mode(tmp_path: Path, catalog: Catalog) -> None:
    with pytest.raises(LibraryError, match="unknown import mode"):
        models.import_model(llama_gguf(tmp_path / "m.gguf"), mode="move", catalog=catalog)


def test_safetensors_bytes_helper_is_valid(tmp_path: Path) -> None:
    from models import read_safetensors_header

    (tmp_path / "x.safetensors").write_bytes(safetensors_bytes({"a": ("F32", (2, 3))}))
    assert read_safetensors_header(tmp_path / "x.safetensors").tensors["a"].n_bytes == 24


def test_an_architecture_no_engine_knows(tmp_path: Path, catalog: Catalog) -> None:
    from model_files import LLAMA_CONFIG

    config = dict(LLAMA_CONFIG, model_type="no_such_arch_xyz", architectures=["NoSuchForCausalLM"])
    folder = make_hf_folder(tmp_path / "alien", config=config)
    _assert_rejected(folder, catalog, "'no_such_arch_xyz' model")
    no_type = {k: v for k, v in LLAMA_CONFIG.items() if k != "model_type"}
    _assert_rejected(make_hf_folder(tmp_path / "notype", config=no_type), catalog, "no model_type")


def test_unquantized_mlx_folder_is_recognised_by_its_writer_mark(tmp_path: Path) -> None:
    """mlx-lm's bf16 output has no quantization entry; its safetensors say format "mlx"."""
    from model_files import hf_tensors

    plain = describe(make_hf_folder(tmp_path / "hf"))
    assert plain.format == "hf-safetensors"
    folder = make_hf_folder(tmp_path / "mlx-bf16")
    (folder / "model.safetensors").write_bytes(safetensors_bytes(hf_tensors(), writer="mlx"))
    record = describe(folder)
    assert record.format == "mlx"
    assert record.quantization == plain.quantization
