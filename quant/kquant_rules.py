"""Which GGML type each tensor gets in a K-quant or Q4_0 file: llama.cpp's mixes, as tables.

A mix is a default type plus a few bumps (more bits where a model is sensitive: the value
projections and the FFN down projections of some layers, the output projection). The rules
follow llama.cpp's quantizer (``llama_tensor_get_type`` in src/llama-quant.cpp) for the mixes
Fireside offers, so a file written here holds the tensor types ``llama-quantize`` would give
it; tests/test_quant_kquants.py checks that against llama.cpp itself.

Adding a mix: a :class:`Mix` in ``MIXES``. Adding a kind of tensor: a line in ``ROLES``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import gguf

from .errors import ConversionError

Q = gguf.GGMLQuantizationType
FT = gguf.LlamaFileType


class ImatrixNeeded(ConversionError):
    """A low-bit mix asked for without an importance matrix."""


class Role(enum.Enum):
    """What a tensor does, as far as choosing its type goes (llama.cpp's categories)."""

    TOKEN_EMBD = "token_embd"
    OUTPUT = "output"
    ATTN_QKV = "attn_qkv"
    ATTN_KV_B = "attn_kv_b"
    ATTN_V = "attn_v"
    ATTN_K = "attn_k"
    ATTN_Q = "attn_q"
    ATTN_OUTPUT = "attn_output"
    FFN_UP = "ffn_up"
    FFN_GATE = "ffn_gate"
    FFN_DOWN = "ffn_down"
    OTHER = "other"


# How a GGUF tensor name maps to its role: (exact name or substring, text, role); the first
# line that matches wins, so the order matters.
ROLES: tuple[tuple[str, str, Role], ...] = (
    ("exact", "output.weight", Role.OUTPUT),
    ("exact", "token_embd.weight", Role.TOKEN_EMBD),
    ("exact", "per_layer_token_embd.weight", Role.TOKEN_EMBD),
    ("in", "attn_qkv.weight", Role.ATTN_QKV),
    ("in", "attn_kv_b.weight", Role.ATTN_KV_B),
    ("in", "attn_v.weight", Role.ATTN_V),
    ("in", "attn_k.weight", Role.ATTN_K),
    ("in", "attn_q.weight", Role.ATTN_Q),
    ("in", "attn_output.weight", Role.ATTN_OUTPUT),
    ("in", "ffn_up", Role.FFN_UP),
    ("in", "ffn_gate", Role.FFN_GATE),
    ("in", "ffn_down", Role.FFN_DOWN),
)
# The value-like projections: the most sensitive to quantization, and counted together.
VALUE_LIKE = frozenset({Role.ATTN_V, Role.ATTN_QKV, Role.ATTN_KV_B})

# Tensors kept in the precision they were written in, whatever the mix: besides 1-D ones
# (norms, biases) and names not ending in "weight". Substrings, then exact names.
NEVER_QUANTIZED_PARTS = (
    "_norm.weight",
    "ffn_gate_inp.weight",  # MoE routers
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "attn_rel_b.weight",
    ".position_embd",
    ".rel_pos",
    ".patch_embd",
    ".patch_merger",
)
NEVER_QUANTIZED_NAMES = frozenset({"position_embd.weight", "token_types.weight"})

# When a row's length is not a multiple of a type's block, the type this falls back to
# (then F16 if even that block does not divide it). Types with 32-wide blocks keep themselves.
FALLBACK: dict[Q, Q] = {
    Q.Q2_K: Q.Q4_0,
    Q.Q3_K: Q.Q4_0,
    Q.Q4_K: Q.Q5_0,
    Q.Q5_K: Q.Q5_1,
    Q.Q6_K: Q.Q8_0,
    Q.IQ4_XS: Q.IQ4_NL,
}


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama.cpp's choice of layers that get more bits: the first and last eighth, and every
    third layer between them."""
    eighth = n_layers // 8
    return i_layer < eighth or i_layer >= 7 * n_layers // 8 or (i_layer - eighth) % 3 == 2


def first_eighth(i_layer: int, n_layers: int) -> bool:
    return i_layer < n_layers // 8


# Conditions a bump can name: f(layer position, layer count, has an importance matrix,
# query heads per key/value head).
CONDITIONS: dict[str, Callable[[int, int, bool, int], bool]] = {
    "more_bits": lambda i, n, imatrix, gqa: use_more_bits(i, n),
    "first_eighth_with_imatrix": lambda i, n, imatrix, gqa: imatrix and first_eighth(i, n),
    "first_eighth_without_imatrix": lambda i, n, imatrix, gqa: not imatrix and first_eighth(i, n),
    "first_two": lambda i, n, imatrix, gqa: i < 2,
    "first_sixteenth": lambda i, n, imatrix, gqa: i < n // 16,
    "gqa_4": lambda i, n, imatrix, gqa: gqa >= 4,
    "always": lambda i, n, imatrix, gqa: True,
}


@dataclass(frozen=True)
class Bump:
    """Tensors of ``roles`` get ``to`` in the layers where ``when`` holds."""

    roles: frozenset[Role]
    when: str  # a key of CONDITIONS
    to: Q


@dataclass(frozen=True)
class Mix:
    label: str  # Q4_K_M
    file_type: FT  # general.file_type (llama_ftype)
    base: Q  # the type of every tensor no rule changes
    bumps: tuple[Bump, ...] = ()  # first match per tensor wins
    # Offered only with an importance matrix: without one these few bits lose too much.
    needs_imatrix: bool = False


_MORE_BITS_Q6_K = (
    Bump(VALUE_LIKE, "more_bits", Q.Q6_K),
    Bump(frozenset({Role.FFN_DOWN}), "more_bits", Q.Q6_K),
)
MIXES: dict[str, Mix] = {
    m.label: m
    for m in (
        Mix(
            "Q4_0",
            FT.MOSTLY_Q4_0,
            Q.Q4_0,
            # with an importance matrix, llama.cpp guards the first FFN-down layers
            (Bump(frozenset({Role.FFN_DOWN}), "first_eighth_with_imatrix", Q.Q4_1),),
        ),
        Mix("Q4_K_M", FT.MOSTLY_Q4_K_M, Q.Q4_K, _MORE_BITS_Q6_K),
        Mix("Q5_K_M", FT.MOSTLY_Q5_K_M, Q.Q5_K, _MORE_BITS_Q6_K),
        Mix("Q6_K", FT.MOSTLY_Q6_K, Q.Q6_K),
        # The low-bit mixes (offered with an importance matrix only: quant.types)
        Mix(
            "Q3_K_M",
            FT.MOSTLY_Q3_K_M,
            Q.Q3_K,
            (
                Bump(VALUE_LIKE, "first_two", Q.Q5_K),
                Bump(VALUE_LIKE, "always", Q.Q4_K),
                Bump(frozenset({Role.FFN_DOWN}), "first_sixteenth", Q.Q5_K),
                Bump(frozenset({Role.FFN_DOWN}), "always", Q.Q4_K),
                Bump(frozenset({Role.ATTN_OUTPUT}), "always", Q.Q4_K),
            ),
            needs_imatrix=True,
        ),
        Mix(
            "Q2_K",
            FT.MOSTLY_Q2_K,
            Q.Q2_K,
            (
                Bump(VALUE_LIKE, "gqa_4", Q.Q4_K),
                Bump(VALUE_LIKE, "always", Q.Q3_K),
                Bump(frozenset({Role.FFN_DOWN, Role.ATTN_OUTPUT}), "always", Q.Q3_K),
            ),
            needs_imatrix=True,
        ),
        Mix(
            "IQ4_XS",
            FT.MOSTLY_IQ4_XS,
            Q.IQ4_XS,
            (
                Bump(VALUE_LIKE, "gqa_4", Q.Q5_K),
                Bump(frozenset({Role.FFN_DOWN}), "first_eighth_without_imatrix", Q.Q5_K),
            ),
            needs_imatrix=True,
        ),
    )
}


@dataclass(frozen=True)
class ModelShape:
    """What the rules need to know about the model as a whole."""

    arch: str  # GGUF architecture name: llama, qwen2, gemma3 ...
    n_layers: int
    n_heads: int
    n_kv_heads: int


# llama.cpp's 70B size class (8 query heads share one value head): value projections that
# would get 3 or 4 bits get 5. Which models count as 70B, per GGUF architecture.
SEVENTY_B: dict[str, Callable[[ModelShape], bool]] = {
    "llama": lambda m: m.n_layers == 80 and m.n_heads != m.n_kv_heads,
    "qwen2": lambda m: m.n_layers == 80,
}
SEVENTY_B_BUMP = ({Q.Q3_K, Q.Q4_K}, Q.Q5_K)
# Architectures whose output projection is always Q8_0.
OUTPUT_Q8_0_ARCHS = frozenset({"falcon"})


def role_of(name: str) -> Role:
    for how, text, role in ROLES:
        if (name == text) if how == "exact" else (text in name):
            return role
    return Role.OTHER


def n_dims(shape: Sequence[int]) -> int:
    """ggml's dimension count: trailing 1s of ggml's order (leading ones in numpy's) don't count."""
    dims = list(shape)
    while len(dims) > 1 and dims[0] == 1:
        dims.pop(0)
    return max(1, len(dims))


def allows_quantization(name: str, shape: Sequence[int]) -> bool:
    if n_dims(shape) < 2 or not name.endswith("weight"):
        return False
    if name in NEVER_QUANTIZED_NAMES:
        return False
    return not any(part in name for part in NEVER_QUANTIZED_PARTS)


def block_size(qtype: Q) -> int:
    return gguf.GGML_QUANT_SIZES[qtype][0]


def with_fallback(qtype: Q, row_length: int) -> Q:
    """``qtype``, or what it falls back to when its block does not divide the row length."""
    if row_length % block_size(qtype) == 0:
        return qtype
    fallback = FALLBACK.get(qtype)
    if fallback is None:
        if block_size(qtype) > 32:
            raise ValueError(f"no fallback type is known for {qtype.name}")
        fallback = qtype
    return fallback if row_length % block_size(fallback) == 0 else Q.F16


_LAYER = re.compile(r"blk\.(\d+)\.")


def loader_order(name: str) -> tuple[int, str]:
    """llama.cpp's order of tensors (whole-model ones first, then by layer, then by name):
    the order its quantizer counts layers in and writes its output in."""
    match = _LAYER.match(name)
    return (int(match.group(1)) if match else -1, name)


def choose_types(
    tensors: Sequence[tuple[str, Sequence[int]]],
    mix: Mix,
    model: ModelShape,
    has_imatrix: bool = False,
) -> dict[str, Q | None]:
    """The GGML type of each tensor (name, numpy shape) in ``mix``; None: not quantized
    (kept in the precision it is written in). A mix that needs an importance matrix is
    refused without one (ImatrixNeeded), before any tensor is written."""
    if mix.needs_imatrix and not has_imatrix:
        raise ImatrixNeeded(
            f"{mix.label} keeps so few bits that Fireside makes it only with an importance "
            f"matrix; add one (fireside convert ... --imatrix auto measures it from the "
            f"source, or --imatrix FILE reads llama.cpp's), or choose Q4_K_M"
        )
    ordered = sorted(tensors, key=lambda t: loader_order(t[0]))
    roles = {name: role_of(name) for name, _ in ordered}
    tied = not any(role == Role.OUTPUT for role in roles.values())
    counts = {
        "value": sum(1 for role in roles.values() if role in VALUE_LIKE),
        "layers": model.n_layers,
    }
    seen: dict[str, int] = {"value": 0}
    seen.update({role.value: 0 for role in Role})
    big = SEVENTY_B.get(model.arch, lambda m: False)(model)
    out: dict[str, Q | None] = {}
    for name, shape in ordered:
        if not allows_quantization(name, shape):
            out[name] = None
            continue
        role, row = roles[name], int(shape[-1])
        if role == Role.OUTPUT or (tied and role == Role.TOKEN_EMBD):
            qtype = _output_type(mix, model, row)
        else:
            # The position among tensors of this kind: the layer index for a dense model.
            if role in VALUE_LIKE:
                i, n = seen["value"], counts["value"]
                seen["value"] += 1
            else:
                i, n = seen[role.value], counts["layers"]
                seen[role.value] += 1
            qtype = _bumped(mix, role, i, n, has_imatrix, model.n_heads // model.n_kv_heads)
            if big and role in VALUE_LIKE and qtype in SEVENTY_B_BUMP[0]:
                qtype = SEVENTY_B_BUMP[1]
        out[name] = with_fallback(qtype, row)
    return out


def _output_type(mix: Mix, model: ModelShape, row: int) -> Q:
    if model.arch in OUTPUT_Q8_0_ARCHS or row % block_size(mix.base) != 0:
        return Q.Q8_0
    return mix.base if mix.base == Q.Q8_0 else Q.Q6_K


def _bumped(mix: Mix, role: Role, i: int, n: int, has_imatrix: bool, gqa: int) -> Q:
    for bump in mix.bumps:
        if role in bump.roles and CONDITIONS[bump.when](i, n, has_imatrix, gqa):
            return bump.to
    return mix.base


def summarize(types: Mapping[str, Q | None]) -> dict[str, int]:
    """How many tensors of each type (for messages and tests)."""
    counts: dict[str, int] = {}
    for qtype in types.values():
        key = "kept" if qtype is None else qtype.name
        counts[key] = counts.get(key, 0) + 1
    return counts
