"""The tokenizer, written into the GGUF: byte-level BPE (tokenizer.json) with its
pre-tokenizer, or SentencePiece (tokenizer.model, or the tokenizer.json transformers 5 saves
in its place); special tokens, add_bos/add_eos and the chat template (through the gguf
package's SpecialVocab)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import gguf

from models.errors import InvalidModelFile, UnsupportedModel

# The split regexes of common byte-level BPE tokenizers, and the name llama.cpp knows each by.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPLIT_TO_PRE = {QWEN2_SPLIT: "qwen2", LLAMA3_SPLIT: "llama-bpe"}


def _pre_tokenizer_parts(pre: Any) -> list[dict[str, Any]]:
    if not isinstance(pre, dict):
        return []
    if pre.get("type") == "Sequence":
        return [p for p in pre.get("pretokenizers", []) if isinstance(p, dict)]
    return [pre]


def bpe_pre_name(tokenizer: dict[str, Any]) -> str:
    """Which of llama.cpp's pre-tokenizers reproduces this tokenizer.json's splitting."""
    parts = _pre_tokenizer_parts(tokenizer.get("pre_tokenizer"))
    kinds = [p.get("type") for p in parts]
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and not parts[1].get("use_regex", True):
        regex = parts[0].get("pattern", {}).get("Regex")
        if regex in SPLIT_TO_PRE:
            return SPLIT_TO_PRE[regex]
    raise UnsupportedModel(
        f"this model's tokenizer splits text in a way Fireside does not know yet "
        f"(pre-tokenizer: {' + '.join(str(k) for k in kinds) or 'none'})"
    )


def _hf_add_flags(folder: Path, bos_id: int | None, eos_id: int | None) -> dict[str, bool]:
    """Whether the HF tokenizer itself adds BOS/EOS, found by asking it (tokenizers library);
    where it cannot be asked, read from the post-processor its tokenizer.json declares."""
    try:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        ids = tok.encode("a", add_special_tokens=True).ids
    except ImportError:
        ids = None
    except Exception as exc:  # e.g. a newer tokenizer.json than the installed library reads
        raise InvalidModelFile(
            f"the tokenizers library cannot read this folder's tokenizer.json ({exc}); "
            "update it with `pip install -U tokenizers`, or check that the file is complete"
        ) from None
    if ids is None:
        ids = _post_processor_ids(folder / "tokenizer.json")
        if ids is None:
            return {}  # no post-processor: the flags in tokenizer_config.json decide
    return {
        "bos": bool(ids) and bos_id is not None and ids[0] == bos_id,
        "eos": bool(ids) and eos_id is not None and ids[-1] == eos_id and len(ids) > 1,
    }


def _write_spm(
    w: Any, folder: Path, tokens: list, scores: list, types: list, add_prefix: bool
) -> Any:
    """Write a SentencePiece vocabulary (llama.cpp's "llama" tokenizer); its special tokens."""
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_add_space_prefix(add_prefix)
    return gguf.SpecialVocab(folder, load_merges=False, n_vocab=len(tokens))


def _byte_level_bpe(tokenizer: dict[str, Any]) -> bool:
    model = tokenizer.get("model") or {}
    return model.get("type") == "BPE" and any(
        p.get("type") == "ByteLevel" for p in _pre_tokenizer_parts(tokenizer.get("pre_tokenizer"))
    )


def _post_processor_ids(path: Path) -> list[int] | None:
    """The ids a TemplateProcessing post-processor puts around one sequence (-1 for the text),
    or None when the file declares none."""
    proc = json.loads(path.read_text(encoding="utf-8")).get("post_processor") or {}
    procs = proc.get("processors", [proc]) if proc.get("type") == "Sequence" else [proc]
    for one in procs:
        if one.get("type") != "TemplateProcessing":
            continue
        out: list[int] = []
        for piece in one.get("single", []):
            if "SpecialToken" in piece:
                out += one["special_tokens"][piece["SpecialToken"]["id"]]["ids"]
            else:
                out.append(-1)
        return out
    return None


def _bpe_tokens(folder: Path, tokenizer: dict[str, Any], vocab_size: int):
    model = tokenizer["model"]
    vocab: dict[str, int] = model.get("vocab") or {}
    added = [t for t in tokenizer.get("added_tokens", []) if isinstance(t, dict)]
    n = max([vocab_size, *(i + 1 for i in vocab.values()), *(t["id"] + 1 for t in added)])
    if n > vocab_size:
        raise InvalidModelFile(
            f"the tokenizer has {n} tokens but the model's embedding only {vocab_size}; "
            f"the folder's tokenizer does not belong to these weights"
        )
    tokens = [f"[PAD{i}]" for i in range(n)]
    types = [gguf.TokenType.UNUSED] * n
    for text, i in vocab.items():
        tokens[i] = text
        types[i] = gguf.TokenType.NORMAL
    for t in added:
        tokens[t["id"]] = t["content"]
        types[t["id"]] = gguf.TokenType.CONTROL if t.get("special") else gguf.TokenType.USER_DEFINED
    return tokens, types


# SentencePiece piece types (sentencepiece_model.proto) -> llama.cpp token types.
_SPM_TYPES = {
    1: gguf.TokenType.NORMAL,
    2: gguf.TokenType.UNKNOWN,
    3: gguf.TokenType.CONTROL,
    4: gguf.TokenType.USER_DEFINED,
    5: gguf.TokenType.UNUSED,
    6: gguf.TokenType.BYTE,
}
_SPM_BPE = 2  # TrainerSpec.ModelType.BPE


def _spm_proto(folder: Path) -> Any:
    try:
        from google.protobuf.message import DecodeError
        from sentencepiece import sentencepiece_model_pb2 as model_pb2
    except ImportError:
        raise UnsupportedModel(
            "converting a SentencePiece tokenizer needs the sentencepiece and protobuf "
            "packages (pip install 'fireside[torch]')"
        ) from None
    proto = model_pb2.ModelProto()  # type: ignore[attr-defined]
    try:
        proto.ParseFromString((folder / "tokenizer.model").read_bytes())
    except (OSError, DecodeError):
        proto.Clear()
    if not proto.pieces:
        raise InvalidModelFile(
            "tokenizer.model is not a readable SentencePiece model; the folder looks damaged"
        )
    if proto.trainer_spec.model_type != _SPM_BPE:
        spec = model_pb2.TrainerSpec  # type: ignore[attr-defined]
        kind = spec.ModelType.Name(proto.trainer_spec.model_type)
        raise UnsupportedModel(
            f"this model's SentencePiece tokenizer is of the {kind.lower()} kind; Fireside "
            f"converts SentencePiece BPE tokenizers (Llama, Mistral, Gemma) only"
        )
    return proto


def _hf_added_tokens(folder: Path, tokenizer: dict[str, Any] | None) -> dict[int, tuple[str, bool]]:
    """Tokens the HF tokenizer adds on top of (or renames in) the SentencePiece model:
    id -> (text, special), from tokenizer.json, else tokenizer_config.json / added_tokens.json."""
    added: dict[int, tuple[str, bool]] = {}
    if tokenizer is not None:
        for t in tokenizer.get("added_tokens", []):
            if isinstance(t, dict) and isinstance(t.get("id"), int) and "content" in t:
                added[t["id"]] = (str(t["content"]), bool(t.get("special")))
        return added
    config = _optional_json(folder / "tokenizer_config.json")
    try:
        for i, t in (config.get("added_tokens_decoder") or {}).items():
            if isinstance(t, dict) and "content" in t:
                added[int(i)] = (str(t["content"]), bool(t.get("special")))
        for text, i in _optional_json(folder / "added_tokens.json").items():
            added.setdefault(int(i), (str(text), False))
    except (ValueError, TypeError, AttributeError):
        raise InvalidModelFile(
            f"the added tokens in {folder.name}'s tokenizer files are malformed; converting "
            "without them would give the model a wrong vocabulary"
        ) from None
    return added


def _optional_json(path: Path) -> dict[str, Any]:
    """A tokenizer file that may be absent ({}); present but unreadable is an error, not {}
    (its tokens would be silently dropped from the converted model)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InvalidModelFile(f"{path.name} could not be read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidModelFile(
            f"{path.name} is not valid JSON; the download may be damaged"
        ) from None
    if not isinstance(data, dict):
        raise InvalidModelFile(f"{path.name} is not a JSON object")
    return data


def _spm_tokens(folder: Path, tokenizer: dict[str, Any] | None, vocab_size: int):
    proto = _spm_proto(folder)
    tokens = [p.piece for p in proto.pieces]
    scores = [float(p.score) for p in proto.pieces]
    types = [_SPM_TYPES.get(p.type, gguf.TokenType.NORMAL) for p in proto.pieces]
    added = _hf_added_tokens(folder, tokenizer)
    n = max([len(tokens), *(i + 1 for i in added)])
    if n > vocab_size:
        raise InvalidModelFile(
            f"the tokenizer has {n} tokens but the model's embedding only {vocab_size}; "
            f"the folder's tokenizer does not belong to these weights"
        )
    for i in range(len(tokens), vocab_size):
        tokens.append(f"[PAD{i}]")
        scores.append(-1000.0)
        types.append(gguf.TokenType.UNUSED)
    for i, (text, special) in sorted(added.items()):
        if i < len(proto.pieces) and text == tokens[i] and types[i] != gguf.TokenType.NORMAL:
            continue  # <unk>, <s>, a byte or control piece: SentencePiece's own type stands
        tokens[i] = text
        if i >= len(proto.pieces):
            scores[i] = -1000.0
        types[i] = gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED
    return tokens, scores, types, bool(proto.normalizer_spec.add_dummy_prefix)


# -- SentencePiece stored only as tokenizer.json (what transformers 5 saves) ---------------
METASPACE = "\u2581"  # ▁, SentencePiece's word-boundary mark
_BYTE_PIECE = re.compile(r"<0x[0-9A-F]{2}>")


def _spm_json_parts(tokenizer: dict[str, Any]) -> tuple[bool, list[str]] | None:
    """Whether this tokenizer.json is a SentencePiece BPE model in transformers' form (byte
    fallback, ▁ for spaces), and if so (add_space_prefix, the parts it has we cannot carry)."""
    model = tokenizer.get("model") or {}
    if model.get("type") != "BPE" or not model.get("byte_fallback"):
        return None
    pre = _pre_tokenizer_parts(tokenizer.get("pre_tokenizer"))
    norm = tokenizer.get("normalizer")
    norms = norm.get("normalizers", []) if isinstance(norm, dict) else []
    norms = norms if norm and norm.get("type") == "Sequence" else ([norm] if norm else [])
    marks = [p for p in pre if p.get("type") == "Metaspace"]
    replaces = [n for n in norms if n.get("type") == "Replace" and n.get("content") == METASPACE]
    if not marks and not replaces:
        return None
    prefix, unknown = False, []
    for m in marks:
        scheme = m.get("prepend_scheme") or ("always" if m.get("add_prefix_space") else "never")
        prefix |= scheme in ("always", "first")
        if m.get("replacement", METASPACE) != METASPACE:
            unknown.append("a Metaspace mark other than ▁")
    for n in norms:
        if n.get("type") == "Prepend" and n.get("prepend") == METASPACE:
            prefix = True
        elif n not in replaces:
            unknown.append(f"normalizer {n.get('type')}")
    for p in pre:
        # Gemma's split at " " comes after the normalizer made every space a ▁: it never cuts
        noop = replaces and p.get("type") == "Split" and p.get("pattern") == {"String": " "}
        if p.get("type") != "Metaspace" and not noop:
            unknown.append(f"pre-tokenizer {p.get('type')}")
    return prefix, unknown


def _spm_json_tokens(folder: Path, tokenizer: dict[str, Any], vocab_size: int):
    """Pieces, scores and types of a SentencePiece BPE model from its tokenizer.json.

    SentencePiece scores a BPE model's normal pieces -0, -1, -2 ... in id order, and merges
    the pair whose result scores highest; tokenizer.json keeps the same order as its merge
    ranks. Where the two orders agree the scores are SentencePiece's own; otherwise they are
    made from the merge ranks, which is what the Hugging Face tokenizer follows.
    """
    model = tokenizer["model"]
    vocab: dict[str, int] = model.get("vocab") or {}
    added = _hf_added_tokens(folder, tokenizer)
    n = max([vocab_size, *(i + 1 for i in vocab.values()), *(i + 1 for i in added)])
    if n > vocab_size:
        raise InvalidModelFile(
            f"the tokenizer has {n} tokens but the model's embedding only {vocab_size}; "
            f"the folder's tokenizer does not belong to these weights"
        )
    unk = model.get("unk_token") or _token_text(
        _optional_json(folder / "tokenizer_config.json").get("unk_token")
    )
    tokens = [f"[PAD{i}]" for i in range(n)]
    scores = [-1000.0] * n
    types = [gguf.TokenType.UNUSED] * n
    for text, i in vocab.items():
        tokens[i], scores[i] = text, 0.0
        if text == unk:
            types[i] = gguf.TokenType.UNKNOWN
        elif _BYTE_PIECE.fullmatch(text):
            types[i] = gguf.TokenType.BYTE
        else:
            types[i] = gguf.TokenType.NORMAL
    for i, (text, special) in added.items():
        tokens[i] = text
        if i not in vocab.values():
            scores[i] = -1000.0
        if types[i] != gguf.TokenType.UNKNOWN:
            types[i] = gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED
    normal = [i for i in sorted(vocab.values()) if types[i] == gguf.TokenType.NORMAL]
    ranks = _merge_ranks(model.get("merges") or [], vocab)
    merged = sorted((r, i) for i, r in ranks.items() if types[i] == gguf.TokenType.NORMAL)
    if [i for _, i in merged] == sorted(i for _, i in merged):
        for k, i in enumerate(normal):
            scores[i] = -float(k)
    else:
        for r, i in merged:
            scores[i] = -float(r)
        rest = [i for i in normal if i not in ranks]
        for k, i in enumerate(rest):
            scores[i] = -float(len(ranks) + k)
    return tokens, scores, types


def _merge_ranks(merges: list[Any], vocab: dict[str, int]) -> dict[int, int]:
    """Each merged piece's id -> the rank of the first merge that makes it."""
    ranks: dict[int, int] = {}
    for rank, merge in enumerate(merges):
        pair = merge.split(" ", 1) if isinstance(merge, str) else merge
        if len(pair) != 2:
            raise InvalidModelFile("tokenizer.json has a malformed merge; it looks damaged")
        i = vocab.get(pair[0] + pair[1])
        if i is not None:
            ranks.setdefault(i, rank)
    return ranks


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def write_tokenizer(w: gguf.GGUFWriter, folder: Path, vocab_size: int) -> str:
    """Write the vocabulary and its settings; returns the kind written ("gpt2" or "llama")."""
    tokenizer_json = folder / "tokenizer.json"
    tokenizer: dict[str, Any] | None = None
    if tokenizer_json.is_file():
        try:
            tokenizer = json.loads(tokenizer_json.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise InvalidModelFile(
                "tokenizer.json is not valid JSON; the folder looks damaged"
            ) from None
    if tokenizer is not None and _byte_level_bpe(tokenizer):
        kind = "gpt2"
        tokens, types = _bpe_tokens(folder, tokenizer, vocab_size)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(bpe_pre_name(tokenizer))
        w.add_token_list(tokens)
        w.add_token_types(types)
        special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens))
        if not special.merges:
            raise InvalidModelFile("tokenizer.json has no merges; the tokenizer looks damaged")
    elif (folder / "tokenizer.model").is_file():
        kind = "llama"
        tokens, scores, types, add_prefix = _spm_tokens(folder, tokenizer, vocab_size)
        special = _write_spm(w, folder, tokens, scores, types, add_prefix)
    elif tokenizer is not None and (spm_json := _spm_json_parts(tokenizer)) is not None:
        add_prefix, unknown = spm_json
        if unknown:
            raise UnsupportedModel(
                "this model's SentencePiece-style tokenizer.json has parts llama.cpp's "
                f"tokenizer cannot reproduce ({', '.join(unknown)})"
            )
        kind = "llama"
        tokens, scores, types = _spm_json_tokens(folder, tokenizer, vocab_size)
        special = _write_spm(w, folder, tokens, scores, types, add_prefix)
    else:
        raise UnsupportedModel(
            "Fireside converts byte-level BPE and SentencePiece tokenizers (tokenizer.json "
            "or tokenizer.model); this folder's tokenizer is of another kind"
        )
    if tokenizer_json.is_file():
        flags = _hf_add_flags(
            folder, special.special_token_ids.get("bos"), special.special_token_ids.get("eos")
        )
        for typ, value in flags.items():
            special.add_special_token[typ] = value
    special.add_special_token.setdefault("bos", kind == "llama")
    special.add_special_token.setdefault("eos", False)
    special.add_to_gguf(w, quiet=True)
    return kind
