"""Will a model fit? Peak memory = weights + KV cache + runtime overhead, against what is free.

The estimate follows how the engines lay memory out, from the model's own metadata (GGUF keys
or the Hugging Face config), without loading it:

- **weights**: the tensor bytes (GGUF files are memory-mapped; every page is touched while
  generating, so all of it becomes resident);
- **KV cache**: per layer ``context x KV heads x (key dim + value dim) x bytes per value``,
  where sliding-window layers keep only their window (plus one batch) instead of the whole
  context; llama.cpp clears the whole cache when it creates it, so it is resident at once;
- **runtime overhead**: the engine's libraries (measured once per engine), its vocabulary
  tables, and the scratch space of one decoding step.

``typical`` is the peak while loading and chatting. ``worst`` adds the scratch space of
evaluating a full prompt batch against a full context (the attention scores llama.cpp
materialises without flash attention): a long conversation reaches it. The verdict: ``fits``
when even the worst case leaves headroom, ``tight`` when the typical case fits but the worst
might not, ``won't fit`` when the typical case is already larger than the memory available.

The constants were measured with SmolLM2-135M Q4_1 on Linux, first with llama-cpp-python
0.3.36 and again with xllamacpp 2026.10 (within 3% at 2k and 8k tokens, and with 4 slots);
tests/test_models_fit.py re-measures them against a real load through Fireside's backend.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import UnsupportedModel
from .records import FORMAT_ENGINES, ModelRecord

MB = 1_000_000
# What the engine process adds before any model: libraries and their allocator state.
RUNTIME_BASE = {"llama.cpp": 40 * MB, "mlx": 150 * MB, "torch": 450 * MB}
VOCAB_BYTES_PER_TOKEN = 320  # llama.cpp's token tables (text, scores, lookup maps)
DEFAULT_UBATCH = 512  # llama.cpp's default micro-batch (Fireside's runtime uses n_batch<=512)
KV_DTYPE_BYTES = {"f32": 4, "f16": 2, "bf16": 2, "q8_0": 34 / 32, "q4_0": 18 / 32}
HEADROOM = 0.85  # "fits" leaves 15% of the available memory for everything else
# Without --ctx: what the llama.cpp runtime loads (runtime.backend: the model's own context,
# at most 8192 tokens; 2048 when the model does not say).
DEFAULT_CONTEXT = 2048
MAX_DEFAULT_CONTEXT = 8192


def load_context(requested: int | None, model_ctx: int | None) -> int:
    """The context every engine loads a model with: what was asked (--ctx), else the
    model's own capped at MAX_DEFAULT_CONTEXT, else DEFAULT_CONTEXT."""
    return requested or min(model_ctx or DEFAULT_CONTEXT, MAX_DEFAULT_CONTEXT)


_GPU_CACHE_SECONDS = 10.0
# llama.cpp's sliding-window pattern per architecture, when the GGUF does not store one:
# (sliding layers, out of every N layers).
SWA_PATTERNS = {"gemma2": (1, 2), "gemma3": (5, 6), "gemma3n": (4, 5), "cohere2": (3, 4)}
VERDICTS = ("fits", "tight", "won't fit")


@dataclass(frozen=True)
class Architecture:
    """What the memory estimate needs to know about a model's shape."""

    n_layers: int
    n_embd: int
    n_head: int
    n_kv_heads: tuple[int, ...]  # per layer
    head_dim_k: int
    head_dim_v: int
    n_vocab: int
    n_ff: int
    sliding_window: int | None = None
    sliding_layers: tuple[bool, ...] = ()  # per layer: True where the window applies


@dataclass(frozen=True)
class Memory:
    """Memory the model can use: RAM, or a GPU's VRAM, or Apple's unified memory."""

    kind: str  # "ram", "vram", "unified"
    available: int
    total: int
    device: str


@dataclass(frozen=True)
class FitEstimate:
    model_id: str
    engine: str
    n_ctx: int  # per request
    kv_dtype: str
    weights: int
    kv_cache: int
    overhead: int
    typical: int  # peak while loading and chatting
    worst: int  # with a full prompt batch against a full context
    memory: Memory
    verdict: str
    notes: list[str] = field(default_factory=list)
    n_parallel: int = 1  # requests served at once, each with its own n_ctx of KV cache

    @property
    def detail(self) -> str:
        """One sentence with the numbers, for a tooltip or a status line."""
        gb = 1e9
        slots = f" x {self.n_parallel} requests at once" if self.n_parallel > 1 else ""
        return (
            f"about {self.typical / gb:.1f} GB while chatting ({self.weights / gb:.1f} GB weights, "
            f"{self.kv_cache / gb:.1f} GB KV cache for {self.n_ctx} tokens{slots}, "
            f"{self.overhead / gb:.1f} GB runtime), up to {self.worst / gb:.1f} GB with a full "
            f"context; {self.memory.available / gb:.1f} GB of {self.memory.device} available"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["detail"] = self.detail
        return data


# -- the model's shape ----------------------------------------------------------------------------
def _int(v: Any, default: int | None = None) -> int | None:
    if isinstance(v, bool):
        return default
    if isinstance(v, int):
        return v
    return default


def _per_layer(value: Any, n_layers: int, default: int) -> tuple[int, ...]:
    if isinstance(value, list) and value and all(isinstance(x, int) for x in value):
        return tuple(value[:n_layers]) + (value[-1],) * max(0, n_layers - len(value))
    return (_int(value, default) or default,) * n_layers


def _swa_layers(
    n_layers: int, pattern: Any, arch: str | None, has_window: bool
) -> tuple[bool, ...]:
    if not has_window:
        return (False,) * n_layers
    if isinstance(pattern, list) and pattern:
        return tuple(bool(pattern[i % len(pattern)]) for i in range(n_layers))
    if isinstance(pattern, int) and pattern > 0:  # every Nth layer is global
        return tuple((i + 1) % pattern != 0 for i in range(n_layers))
    sliding, period = SWA_PATTERNS.get(arch or "", (1, 1))  # unknown: window on every layer
    return tuple(i % period < sliding for i in range(n_layers))


def gguf_architecture(metadata: dict[str, Any]) -> Architecture:
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str):
        raise UnsupportedModel("the GGUF file does not say its architecture")

    def get(suffix: str) -> Any:
        return metadata.get(f"{arch}.{suffix}")

    n_layers = _int(get("block_count"))
    n_embd = _int(get("embedding_length"))
    if not n_layers or not n_embd:
        raise UnsupportedModel(f"the GGUF file lacks {arch}.block_count or embedding_length")
    head_value = get("attention.head_count")
    n_head = max(_per_layer(head_value, n_layers, 1))
    kv = _per_layer(get("attention.head_count_kv"), n_layers, n_head)
    k_dim = _int(get("attention.key_length")) or n_embd // max(n_head, 1)
    v_dim = _int(get("attention.value_length")) or k_dim
    tokens = metadata.get("tokenizer.ggml.tokens")
    n_vocab = (
        _int(get("vocab_size"))
        or getattr(tokens, "count", None)
        or (len(tokens) if isinstance(tokens, list) else 32000)
    )
    n_ff = max(_per_layer(get("feed_forward_length"), n_layers, 4 * n_embd))
    window = _int(get("attention.sliding_window"))
    layers = _swa_layers(n_layers, get("attention.sliding_window_pattern"), arch, bool(window))
    return Architecture(n_layers, n_embd, n_head, kv, k_dim, v_dim, n_vocab, n_ff, window, layers)


def hf_architecture(config: dict[str, Any]) -> Architecture:
    text = config.get("text_config")
    c: dict[str, Any] = text if isinstance(text, dict) else config
    n_layers = _int(c.get("num_hidden_layers"))
    n_embd = _int(c.get("hidden_size"))
    n_head = _int(c.get("num_attention_heads"))
    if not n_layers or not n_embd or not n_head:
        raise UnsupportedModel(
            "config.json lacks num_hidden_layers, hidden_size or num_attention_heads"
        )
    kv = _per_layer(c.get("num_key_value_heads"), n_layers, n_head)
    head_dim = _int(c.get("head_dim")) or n_embd // n_head
    n_vocab = _int(c.get("vocab_size")) or 32000
    n_ff = _int(c.get("intermediate_size")) or 4 * n_embd
    window = _int(c.get("sliding_window"))
    layer_types = c.get("layer_types")
    if isinstance(layer_types, list) and len(layer_types) >= n_layers:
        layers = tuple(t == "sliding_attention" for t in layer_types[:n_layers])
        window = window if any(layers) else None
    else:
        use = c.get("use_sliding_window", True)
        pattern = c.get("sliding_window_pattern")
        layers = _swa_layers(n_layers, pattern, c.get("model_type"), bool(window) and use)
    return Architecture(
        n_layers, n_embd, n_head, kv, head_dim, head_dim, n_vocab, n_ff, window, layers
    )


def kv_cache_bytes(a: Architecture, n_ctx: int, kv_dtype: str = "f16") -> int:
    """Bytes of the KV cache for ``n_ctx`` tokens (sliding-window layers keep their window)."""
    per_value = KV_DTYPE_BYTES[kv_dtype]
    total = 0.0
    for i in range(a.n_layers):
        cells = n_ctx
        if a.sliding_layers and a.sliding_layers[i] and a.sliding_window:
            cells = min(n_ctx, a.sliding_window + DEFAULT_UBATCH)
        total += cells * a.n_kv_heads[i] * (a.head_dim_k + a.head_dim_v) * per_value
    return int(total)


def _overheads(a: Architecture, engine: str, n_ctx: int, flash_attn: bool) -> tuple[int, int]:
    """(typical overhead, extra at worst) for an engine."""
    base = RUNTIME_BASE[engine]
    vocab = a.n_vocab * VOCAB_BYTES_PER_TOKEN
    step = 4 * (3 * a.n_ff + 12 * a.n_embd + a.n_vocab)  # one token's activations and logits
    ubatch = min(DEFAULT_UBATCH, n_ctx)
    # A full micro-batch against a full context: activations, and the attention scores that
    # are materialised (f32) unless flash attention is on.
    batch_act = ubatch * 4 * (3 * a.n_ff + 12 * a.n_embd)
    scores = 0 if flash_attn else ubatch * n_ctx * a.n_head * 4
    return base + vocab + step, batch_act + scores


# -- the memory available ---------------------------------------------------------------------
_gpu_cache: tuple[float, Memory | None] | None = None


def _nvidia_smi() -> Memory | None:
    """The CUDA GPU with the most free memory, from nvidia-smi (cached for a few seconds)."""
    global _gpu_cache
    now = time.monotonic()
    if _gpu_cache is not None and now - _gpu_cache[0] < _GPU_CACHE_SECONDS:
        return _gpu_cache[1]
    result = _query_nvidia_smi()
    _gpu_cache = (now, result)
    return result


def _query_nvidia_smi() -> Memory | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.free,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    best: Memory | None = None
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            continue
        try:
            free, total = int(float(parts[1])) * 1024 * 1024, int(float(parts[2])) * 1024 * 1024
        except ValueError:
            continue
        if best is None or free > best.available:
            best = Memory("vram", free, total, parts[0])
    return best


def system_memory() -> Memory:
    import psutil

    vm = psutil.virtual_memory()
    if sys.platform == "darwin" and platform.machine() == "arm64":
        # Apple Silicon: the GPU shares RAM; Metal lets one process use about 3/4 of it.
        return Memory(
            "unified", min(vm.available, int(vm.total * 0.75)), vm.total, "unified memory"
        )
    return Memory("ram", vm.available, vm.total, "RAM")


def available_memory(engine: str = "llama.cpp") -> Memory:
    """Where the model would live: a CUDA GPU's free VRAM if there is one, else RAM."""
    if engine in ("llama.cpp", "torch") and sys.platform != "darwin":
        gpu = _nvidia_smi()
        if gpu is not None:
            return gpu
    return system_memory()


# -- the estimate -----------------------------------------------------------------------------------
ESTIMATED_ENGINES = ("llama.cpp", "mlx", "torch", "onnx")  # the engines the estimate knows


def _engine_for(fmt: str) -> str:
    """The engine a format loads on by default (models.records.FORMAT_ENGINES' first)."""
    engine = (FORMAT_ENGINES.get(fmt) or ("",))[0]
    if engine not in ESTIMATED_ENGINES:
        raise UnsupportedModel(f"no memory estimate for {fmt} models")
    return engine


def _shape_and_weights(record: ModelRecord) -> tuple[Architecture, int, int | None]:
    """(architecture, weight bytes, the model's own context length)."""
    path = Path(record.path)
    if record.format in ("gguf", "gguf-split"):
        from .gguf_model import read_gguf_model

        model = read_gguf_model(path)
        return gguf_architecture(model.metadata), model.tensor_bytes, model.first.context_length
    from .hf import read_hf_config, read_hf_folder

    config = read_hf_config(path)
    a = hf_architecture(config)
    ckpt = read_hf_folder(path)
    weights = ckpt.weight_bytes
    text = config.get("text_config")
    c: dict[str, Any] = text if isinstance(text, dict) else config
    return a, weights, _int(c.get("max_position_embeddings"))


def estimate(
    record: ModelRecord,
    n_ctx: int | None = None,
    *,
    kv_dtype: str | None = None,  # None: the engine's own (f16; ONNX: the graph's type)
    flash_attn: bool = False,
    memory: Memory | None = None,
    n_parallel: int = 1,
) -> FitEstimate:
    """Estimate the peak memory of running ``record`` with ``n_ctx`` tokens of context for
    each of ``n_parallel`` requests served at once (llama.cpp gives every slot its own)."""
    engine = _engine_for(record.format)
    lookup = 0  # ONNX: an embedding table read a row per token, counted only at worst
    if engine == "onnx":
        from .onnx_fit import onnx_shape

        a, weights, model_ctx, own_kv, lookup = onnx_shape(Path(record.path))
        kv_dtype = kv_dtype or own_kv
    else:
        a, weights, model_ctx = _shape_and_weights(record)
    kv_dtype = kv_dtype or "f16"
    if kv_dtype not in KV_DTYPE_BYTES:
        raise UnsupportedModel(f"unknown KV cache type {kv_dtype!r}")
    notes: list[str] = []
    if n_ctx is None:
        n_ctx = load_context(None, model_ctx)
    if n_ctx <= 0:
        raise UnsupportedModel("the context length must be a positive number of tokens")
    if model_ctx and n_ctx > model_ctx:
        notes.append(f"the model was trained for {model_ctx} tokens of context, not {n_ctx}")
    if n_parallel < 1:
        raise UnsupportedModel("the number of requests at once must be 1 or more")
    kv = kv_cache_bytes(a, n_ctx, kv_dtype) * n_parallel
    if engine == "onnx":
        from .onnx_fit import onnx_overheads

        overhead, extra = onnx_overheads(a, n_ctx, lookup)
    else:
        overhead, extra = _overheads(a, engine, n_ctx, flash_attn)
    typical = weights + kv + overhead
    worst = typical + extra
    mem = memory or available_memory(engine)
    if typical > mem.available:
        verdict = "won't fit"
    elif worst <= HEADROOM * mem.available:
        verdict = "fits"
    else:
        verdict = "tight"
    if lookup:
        notes.append(f"its {lookup / 1e6:.0f} MB token-embedding table is read a row per token")
    if a.sliding_window and any(a.sliding_layers):
        n = sum(a.sliding_layers)
        notes.append(f"{n} of {a.n_layers} layers use a {a.sliding_window}-token sliding window")
    return FitEstimate(
        record.id, engine, n_ctx, kv_dtype, weights, kv, overhead, typical, worst, mem, verdict,
        notes, n_parallel,
    )  # fmt: skip


MAX_DEFAULT_PARALLEL = 4
PARALLEL_MEMORY_SHARE = 0.10  # the KV cache of all slots together, of the memory available


def default_parallel(metadata: dict[str, Any], n_ctx: int, memory: Memory | None = None) -> int:
    """How many requests a GGUF model serves at once unless told: up to 4, while the KV
    cache of every slot stays within a tenth of the memory available (a small model gets
    4; a 8B model on a 16 GB laptop gets 1, so a lone chat never pays for idle slots)."""
    per_slot = kv_cache_bytes(gguf_architecture(metadata), n_ctx)
    available = (memory or available_memory("llama.cpp")).available
    fits = int(PARALLEL_MEMORY_SHARE * available // max(per_slot, 1))
    return max(1, min(MAX_DEFAULT_PARALLEL, fits))


def verdict_for_download(size_bytes: int, kind: str) -> str:
    """A quick verdict for a model known only by its download size (Hub search results).

    Without the architecture, the KV cache and runtime are approximated as a share of the
    weights plus a fixed runtime cost; ``estimate`` gives the real numbers once it is on disk.
    """
    engine = {"gguf": "llama.cpp", "mlx": "mlx"}.get(kind, "torch")
    typical = int(size_bytes * 1.15) + 300_000_000
    mem = available_memory(engine)
    if typical > mem.available:
        return "won't fit"
    return "fits" if typical * 1.25 <= HEADROOM * mem.available else "tight"
