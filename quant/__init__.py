"""Conversion: Hugging Face / PyTorch checkpoints to GGUF and MLX. No Qt."""
