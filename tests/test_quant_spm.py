"""The SentencePiece tokenizer path of the GGUF converter, on a tokenizer trained here.

A tiny SentencePiece BPE model is trained the way Llama's was (byte fallback, split digits,
identity normalisation, dummy prefix), wrapped in transformers' Llama tokenizer (plus
chat tokens added on top of it, as fine-tunes do) and saved beside a tiny random Llama, the
way a Llama-2/Mistral folder looks (tokenizer.model, tokenizer.json, tokenizer_config.json).
Converted to F16, llama.cpp must tokenize like the Hugging Face tokenizer, byte fallback and
special tokens included, and give transformers' logits.

Where transformers 5 itself departs from SentencePiece (no dummy prefix before a run of text
that starts with a space), llama.cpp is held to SentencePiece. llama.cpp always puts a dummy
prefix after a special token, so only "legacy" tokenizers (legacy=True) can match it there.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from quant_helpers import kl_and_top1, llama_logits, llama_vocab
from tiny_models import tiny_config

from models.gguf import read_gguf
from quant import convert

pytestmark = pytest.mark.slow  # about 10 s: torch, transformers, a conversion

WORDS = (  # noqa: SIM905
    "the of and to in is was for on that with as by at from his her they this which be "
    "had not are but were have one all their there been has when who will more no if out "
    "so said what up its about into than them can only other new some could time these "
    "two may then first any my now such like our over man me even most made after also "
    "did many before must through back years where much your way well down should "
    "because each just those people river mountain garden window kitchen library morning "
    "evening winter summer yellow purple function return value number string list table "
    "model token weight layer "
).split()
SPECIAL_ADDED = ["<|im_start|>", "<|im_end|>"]  # added by the HF tokenizer, past the SPM vocab
CONTROL = ["[INST]", "[/INST]"]  # control pieces inside the SPM model (as Mistral's)
SPM_VOCAB = 400
MODEL_VOCAB = 416  # padded past the tokenizer's 402 tokens, as many checkpoints are
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
)
SPECIALS = {"<unk>", "<s>", "</s>", *CONTROL, *SPECIAL_ADDED}
SPECIAL_SPLIT = re.compile("(" + "|".join(re.escape(t) for t in sorted(SPECIALS)) + ")")
TEXTS = [
    "Hello world",
    "the river and the mountain",
    "  two leading spaces, and   three inside; trailing ",
    "In 2024 there were 366 days, and pi is 3.14159.",
    "Naïve café — 東京 🚀 Привет ½ x²",  # none of it in the training text: byte fallback
    "first line\nsecond line\n\n\ttabbed",
    "<s>the model</s>after the end",
    "[INST] what is a token? [/INST] a piece of text",  # runs that start with a space
    "[INST]what is a token?[/INST]a piece of text<unk>",
    "<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\n",
    "",
]


def _training_text() -> str:
    rng = random.Random(0)
    lines = []
    for _ in range(600):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 14))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 99999)))
        lines.append(" ".join(words).capitalize() + rng.choice([".", ",", "?", "!", ";"]))
    return "\n".join(lines) + "\n"


def train_spm(work: Path, *, dummy_prefix: bool = True) -> Path:
    """A tiny SentencePiece BPE model trained as Llama's was; returns tokenizer.model's path
    (alone in its folder, for transformers to load)."""
    import sentencepiece as spm

    work.mkdir()
    (work / "train.txt").write_text(_training_text(), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(work / "train.txt"),
        model_prefix=str(work / "tokenizer"),
        model_type="bpe",
        vocab_size=SPM_VOCAB,
        byte_fallback=True,
        split_digits=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        add_dummy_prefix=dummy_prefix,
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        control_symbols=CONTROL,
        num_threads=1,
        minloglevel=2,
    )
    (work / "hf").mkdir()
    (work / "tokenizer.model").rename(work / "hf" / "tokenizer.model")
    return work / "hf" / "tokenizer.model"


def save_tiny_llama(folder: Path, tok) -> Path:
    """A tiny random Llama with ``tok`` (chat tokens and template added) saved beside it."""
    import torch
    import transformers as tf

    tok.add_special_tokens({"additional_special_tokens": SPECIAL_ADDED})
    tok.chat_template = CHAT_TEMPLATE
    config = tiny_config("LlamaForCausalLM", MODEL_VOCAB)
    torch.manual_seed(5)
    model = tf.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    folder.mkdir()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _build(folder: Path) -> Path:
    import transformers as tf

    work = folder.parent / "spm-work"
    spm_file = train_spm(work)
    # As Llama-2 / Mistral: BOS added, a dummy prefix after special tokens too (legacy).
    tok = tf.LlamaTokenizer.from_pretrained(spm_file.parent, legacy=True, add_bos_token=True)
    save_tiny_llama(folder, tok)
    # transformers 5 writes tokenizer.json only, and leaves these settings out of
    # tokenizer_config.json; a Llama-2/Mistral folder carries both files and the settings.
    shutil.copy(spm_file, folder / "tokenizer.model")
    config_path = folder / "tokenizer_config.json"
    tok_config = json.loads(config_path.read_text(encoding="utf-8"))
    tok_config.update(add_bos_token=True, add_eos_token=False, legacy=True)
    config_path.write_text(json.dumps(tok_config, indent=2), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("spm")
    folder = _build(root / "src")
    out = convert(folder, "gguf-f16", root / "spm.gguf", name="tiny spm test model")
    return folder, out


def test_the_folder_looks_like_a_llama_2_one(spm_model: tuple[Path, Path]) -> None:
    folder, _ = spm_model
    for name in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "config.json"):
        assert (folder / name).is_file(), name


def spm_reference(sp, tok, text: str) -> list[int]:
    """What the model was trained on: BOS, then SentencePiece on each run of text between
    special tokens (each with its dummy prefix, as Llama-2's tokenizer did)."""
    ids = [tok.bos_token_id]
    for part in SPECIAL_SPLIT.split(text):
        if part in SPECIALS:
            ids.append(tok.convert_tokens_to_ids(part))
        elif part:
            ids.extend(sp.encode(part))
    return ids


def test_tokenization_matches_the_hf_tokenizer(spm_model: tuple[Path, Path]) -> None:
    import sentencepiece
    from transformers import AutoTokenizer

    folder, out = spm_model
    tok = AutoTokenizer.from_pretrained(folder)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    pieces = tok.convert_ids_to_tokens(list(range(len(tok))))
    byte_tokens = {i for i, p in enumerate(pieces) if re.fullmatch(r"<0x[0-9A-F]{2}>", p)}
    assert len(byte_tokens) == 256
    tokenized = llama_vocab(out, TEXTS, detokenize=[])["tokens"]
    plain = [t for t, ids in zip(TEXTS, tokenized) if t.strip() and not SPECIAL_SPLIT.search(t)]
    back = dict(
        zip(plain, llama_vocab(out, [], [tokenized[TEXTS.index(t)][1:] for t in plain])["plain"])
    )
    used_bytes, compared_with_hf = False, 0
    for text, got in zip(TEXTS, tokenized, strict=True):
        assert got == spm_reference(sp, tok, text), text
        used_bytes |= bool(byte_tokens & set(got))
        # transformers 5 (Metaspace) puts no dummy prefix before a run of text that starts
        # with a space; SentencePiece and llama.cpp do. Elsewhere they must agree exactly.
        if not any(p.startswith(" ") for p in SPECIAL_SPLIT.split(text)):
            expected = tok(text, add_special_tokens=True).input_ids
            assert got == expected, (text, tok.convert_ids_to_tokens(expected))
            compared_with_hf += 1
        if text in back:
            assert back[text].lstrip() == text.lstrip()
    assert used_bytes, "no text went through byte fallback"
    assert compared_with_hf >= len(TEXTS) - 3


def test_vocabulary_metadata(spm_model: tuple[Path, Path]) -> None:
    import gguf
    from transformers import AutoTokenizer

    folder, out = spm_model
    tok = AutoTokenizer.from_pretrained(folder)
    info = read_gguf(out)
    assert info.get("tokenizer.ggml.model") == "llama"
    assert info.get("tokenizer.ggml.bos_token_id") == tok.bos_token_id == 1
    assert info.get("tokenizer.ggml.eos_token_id") == tok.eos_token_id == 2
    assert info.get("tokenizer.ggml.unknown_token_id") == tok.unk_token_id == 0
    assert info.get("tokenizer.ggml.add_bos_token") is True
    assert info.get("tokenizer.ggml.add_eos_token") is False
    assert info.get("tokenizer.ggml.add_space_prefix") is True
    assert info.chat_template == CHAT_TEMPLATE

    reader = gguf.GGUFReader(out)
    field = reader.fields["tokenizer.ggml.token_type"]
    types = [int(field.parts[i][0]) for i in field.data]
    field = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
    assert len(tokens) == len(types) == MODEL_VOCAB
    T = gguf.TokenType
    assert types[0] == T.UNKNOWN
    assert types[1] == types[2] == T.CONTROL
    for piece in CONTROL + SPECIAL_ADDED:
        i = tok.convert_tokens_to_ids(piece)
        assert tokens[i] == piece and types[i] == T.CONTROL, piece
    assert tokens[3 + len(CONTROL)] == "<0x00>"
    assert all(t == T.BYTE for t in types[3 + len(CONTROL) : 3 + len(CONTROL) + 256])
    assert all(t == T.UNUSED for t in types[len(tok) :])
    normal = [i for i, t in enumerate(types) if t == T.NORMAL]
    assert len(normal) == SPM_VOCAB - 3 - len(CONTROL) - 256
    assert all(tokens[i] == tok.convert_ids_to_tokens(i) for i in normal)


def test_logits_match_transformers(spm_model: tuple[Path, Path]) -> None:
    import torch
    import transformers as tf

    folder, out = spm_model
    tok = tf.AutoTokenizer.from_pretrained(folder)
    model = tf.LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = [tok(t).input_ids for t in TEXTS[2:6]]
    with torch.no_grad():
        ref = [model(torch.tensor([i])).logits[0].numpy() for i in ids]
    got = llama_logits(out, ids)
    for r, g in zip(ref, got, strict=True):
        kl, top1 = kl_and_top1(r, g)
        assert kl < 1e-4, f"mean KL {kl}"
        assert top1 == 1.0, f"top-1 agreement {top1}"
        assert np.abs(r - g).max() < 0.02


def _copy_with_tokenizer_model(src: Path, dst: Path, model: bytes) -> Path:
    shutil.copytree(src, dst)
    (dst / "tokenizer.model").write_bytes(model)
    return dst


def test_a_unigram_or_damaged_tokenizer_model_is_refused(
    spm_model: tuple[Path, Path], tmp_path: Path
) -> None:
    import sentencepiece as spm

    from models.errors import InvalidModelFile, UnsupportedModel

    folder, _ = spm_model
    (tmp_path / "train.txt").write_text(_training_text(), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(tmp_path / "train.txt"),
        model_prefix=str(tmp_path / "unigram"),
        model_type="unigram",
        vocab_size=SPM_VOCAB,
        byte_fallback=True,
        num_threads=1,
        minloglevel=2,
    )
    unigram = _copy_with_tokenizer_model(
        folder, tmp_path / "unigram-src", (tmp_path / "unigram.model").read_bytes()
    )
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsupportedModel, match="unigram"):
        convert(unigram, "gguf-f16", out / "unigram.gguf")
    damaged = _copy_with_tokenizer_model(folder, tmp_path / "damaged-src", b"\x00garbage" * 50)
    with pytest.raises(InvalidModelFile, match="tokenizer.model"):
        convert(damaged, "gguf-f16", out / "damaged.gguf")
    assert list(out.iterdir()) == []


def test_damaged_added_tokens_are_refused_not_dropped(
    spm_model: tuple[Path, Path], tmp_path: Path
) -> None:
    """A SentencePiece folder without tokenizer.json takes its added tokens from
    tokenizer_config.json: a damaged one is refused in words (dropping its tokens would give
    the converted model a wrong vocabulary), and nothing is written."""
    from models.errors import InvalidModelFile

    folder, _ = spm_model
    src = tmp_path / "src"
    shutil.copytree(folder, src)
    (src / "tokenizer.json").unlink()
    bad_ids = {"added_tokens_decoder": {"not-an-id": {"content": "<tool>", "special": True}}}
    (src / "tokenizer_config.json").write_text(json.dumps(bad_ids), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InvalidModelFile, match="added tokens .* are malformed"):
        convert(src, "gguf-f16", out / "model.gguf")
    assert list(out.iterdir()) == []
