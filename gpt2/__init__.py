"""gpt2: GPT-2 from scratch in PyTorch, loading OpenAI's released weights.

    import gpt2
    model = gpt2.load_pretrained("124M")            # cached copies first, then the Hub, then OpenAI (hub.py)
    # or gpt2.load_checkpoint(folder), for a folder in OpenAI's, Hugging Face's or the project's layout
    enc = gpt2.get_tokenizer()                       # or gpt2.get_tokenizer(directory) for a trained model
    ids = enc.encode("Every effort moves you")
    print(enc.decode(list(gpt2.generate(model, ids, max_new_tokens=20, temperature=0))))
    gpt2.tl_names.to_ours("blocks.3.attn.hook_pattern")  # 'h.3.attn.hook_pattern': TransformerLens's names

This package knows nothing of the explorer built on top of it.
"""

from .checkpoint import SHIPPED_MODELS, CheckpointError, load_checkpoint, load_openai_checkpoint, save_checkpoint
from .config import PRESETS, SIZES, GPTConfig
from .generate import generate
from .hub import MODEL_NAMES, check_obtainable, load_pretrained
from .model import GPT2, HookPoint, KVCache
from .sampling import filter_logits, sample_token
from . import tl_names
from .tokenizer import EOT_ID, get_tokenizer

__all__ = [
    "GPT2", "GPTConfig", "HookPoint", "KVCache", "MODEL_NAMES", "PRESETS", "SIZES", "SHIPPED_MODELS", "EOT_ID",
    "CheckpointError", "check_obtainable", "filter_logits", "generate", "get_tokenizer", "load_checkpoint",
    "load_openai_checkpoint", "load_pretrained", "sample_token", "save_checkpoint", "tl_names",
]
