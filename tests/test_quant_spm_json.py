"""SentencePiece models stored only as tokenizer.json, as transformers 5 saves every Llama-2,
Mistral, Gemma or Phi-3 tokenizer: no tokenizer.model in the folder.

The test trains its own tiny SentencePiece BPE model (tests/test_quant_spm.py's), loads it
into transformers 5's Llama tokenizer (a dummy prefix, BOS added, as Llama-2 / Mistral) and
Gemma tokenizer (no dummy prefix), saves each beside a tiny random Llama so that only
tokenizer.json and tokenizer_config.json describe it, converts to F16, and holds llama.cpp's
tokenization to the Hugging Face tokenizer's, the pieces' types and scores to the
SentencePiece model's own, and the logits to transformers'.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from quant_helpers import gguf_contents, kl_and_top1, llama_logits, llama_vocab
from test_quant_spm import (
    CONTROL,
    MODEL_VOCAB,
    SPECIAL_ADDED,
    SPECIAL_SPLIT,
    SPECIALS,
    TEXTS,
    save_tiny_llama,
    spm_reference,
    train_spm,
)

from models.gguf import read_gguf
from quant import convert

pytestmark = pytest.mark.slow  # about 15 s: two tokenizers trained, two conversions

CODE = 'def f(x):\n    return {"a": x ** 2}  # 4 spaces\n'
VARIED = [*TEXTS, CODE, "émoji 🤖 and Ω≈ç√ plus ＡＢＣ", "<|im_start|>" + CODE + "<|im_end|>"]


@pytest.fixture(scope="module", params=["llama", "gemma"])
def json_only(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """(the folder, the GGUF, the SentencePiece model the tokenizer was made from, variant)."""
    import transformers as tf

    root = tmp_path_factory.mktemp(f"spm-json-{request.param}")
    llama = request.param == "llama"
    spm_file = train_spm(root / "work", dummy_prefix=llama)
    if llama:
        tok = tf.LlamaTokenizer.from_pretrained(spm_file.parent, legacy=True, add_bos_token=True)
    else:
        tok = tf.GemmaTokenizer.from_pretrained(
            spm_file.parent, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token=None
        )
    folder = save_tiny_llama(root / "src", tok)
    out = convert(folder, "gguf-f16", root / "model.gguf", name="tiny spm json test model")
    return folder, out, spm_file, request.param


def test_only_tokenizer_json_describes_the_tokenizer(json_only) -> None:
    folder, *_ = json_only
    assert (folder / "tokenizer.json").is_file()
    assert not (folder / "tokenizer.model").exists()


def test_tokenization_matches_the_hf_tokenizer(json_only) -> None:
    """Held to the tokenizer.json itself (the tokenizers library), and to transformers'
    tokenizer on every text without special tokens: transformers 5 loads a Llama tokenizer
    saved without its ``legacy`` flag as non-legacy (no dummy prefix after a special token),
    which llama.cpp cannot represent; the file and SentencePiece put one there."""
    import sentencepiece
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    folder, out, spm_file, variant = json_only
    tok = AutoTokenizer.from_pretrained(folder)
    file_tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    sp = sentencepiece.SentencePieceProcessor(model_file=str(spm_file))
    pieces = tok.convert_ids_to_tokens(list(range(len(tok))))
    byte_tokens = {i for i, p in enumerate(pieces) if re.fullmatch(r"<0x[0-9A-F]{2}>", p)}
    got_all = llama_vocab(out, VARIED, detokenize=[])["tokens"]
    used_bytes, same_as_hf, same_as_transformers = False, 0, 0
    for text, got in zip(VARIED, got_all, strict=True):
        used_bytes |= bool(byte_tokens & set(got))
        # The Metaspace pre-tokenizer puts no dummy prefix before a run of text that already
        # starts with a space; SentencePiece and llama.cpp do. There llama.cpp is held to
        # the SentencePiece model the tokenizer came from.
        leading = variant == "llama" and any(p.startswith(" ") for p in SPECIAL_SPLIT.split(text))
        if leading:
            assert got == spm_reference(sp, tok, text), text
            continue
        assert got == file_tok.encode(text, add_special_tokens=True).ids, text
        same_as_hf += 1
        if not SPECIAL_SPLIT.search(text):
            expected = tok(text, add_special_tokens=True).input_ids
            assert got == expected, (text, tok.convert_ids_to_tokens(expected))
            same_as_transformers += 1
    assert used_bytes, "no text went through byte fallback"
    assert same_as_hf >= len(VARIED) - 3
    assert same_as_transformers >= 6


def test_types_scores_and_settings_are_sentencepieces(json_only) -> None:
    import gguf
    import sentencepiece
    from transformers import AutoTokenizer

    folder, out, spm_file, variant = json_only
    tok = AutoTokenizer.from_pretrained(folder)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(spm_file))
    info = read_gguf(out)
    assert info.get("tokenizer.ggml.model") == "llama"
    assert info.get("tokenizer.ggml.bos_token_id") == tok.bos_token_id == 1
    assert info.get("tokenizer.ggml.eos_token_id") == tok.eos_token_id == 2
    assert info.get("tokenizer.ggml.unknown_token_id") == tok.unk_token_id == 0
    assert info.get("tokenizer.ggml.add_bos_token") is (tok("a").input_ids[0] == 1)
    assert info.get("tokenizer.ggml.add_space_prefix") is (variant == "llama")

    meta, _ = gguf_contents(out)
    reader = gguf.GGUFReader(out)
    types = [int(reader.fields["tokenizer.ggml.token_type"].parts[i][0]) for i in
             reader.fields["tokenizer.ggml.token_type"].data]  # fmt: skip
    field = reader.fields["tokenizer.ggml.scores"]
    scores = [float(field.parts[i][0]) for i in field.data]
    field = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
    assert "tokenizer.ggml.merges" not in meta
    assert len(tokens) == len(types) == len(scores) == MODEL_VOCAB
    T = gguf.TokenType
    spm_types = {1: T.NORMAL, 2: T.UNKNOWN, 3: T.CONTROL, 6: T.BYTE}
    for i in range(sp.get_piece_size()):
        kind = next(k for k, f in ((2, sp.is_unknown), (3, sp.is_control), (6, sp.is_byte),
                                   (1, lambda _i: True)) if f(i))  # fmt: skip
        assert (tokens[i], types[i], scores[i]) == (
            sp.id_to_piece(i),
            spm_types[kind],
            sp.get_score(i),
        ), i
    for piece in CONTROL + SPECIAL_ADDED:
        i = tok.convert_tokens_to_ids(piece)
        assert tokens[i] == piece and types[i] == T.CONTROL, piece
    assert all(t == T.UNUSED for t in types[len(tok) :])
    assert {tokens[i] for i, t in enumerate(types) if t == T.CONTROL} >= SPECIALS - {"<unk>"}


def test_logits_match_transformers(json_only) -> None:
    import torch
    import transformers as tf

    folder, out, _, _ = json_only
    tok = tf.AutoTokenizer.from_pretrained(folder)
    model = tf.LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = [tok(t).input_ids for t in TEXTS[2:6]]
    with torch.no_grad():
        ref = [model(torch.tensor([i])).logits[0].numpy() for i in ids]
    for r, g in zip(ref, llama_logits(out, ids), strict=True):
        kl, top1 = kl_and_top1(r, g)
        assert kl < 1e-4, f"mean KL {kl}"
        assert top1 == 1.0
        assert np.abs(r - g).max() < 0.02


def test_a_tokenizer_json_llama_cpp_cannot_reproduce_is_refused(json_only, tmp_path) -> None:
    import json
    import shutil

    from models.errors import UnsupportedModel

    folder, *_ = json_only
    src = tmp_path / "src"
    shutil.copytree(folder, src)
    data = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    kept = [data["normalizer"]] if data["normalizer"] else []
    data["normalizer"] = {"type": "Sequence", "normalizers": [*kept, {"type": "NFKC"}]}
    (src / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsupportedModel, match="normalizer NFKC"):
        convert(src, "gguf-f16", out / "model.gguf")
    assert list(out.iterdir()) == []
