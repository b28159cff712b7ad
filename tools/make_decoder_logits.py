#!/usr/bin/env python3
"""Make the decoder's own reference fixtures under tests/fixtures/decoder_logits/.

One tiny random-weight causal LM per architecture row of src/models/decoder_arch.c,
saved with save_pretrained (config.json + model.safetensors, float32), and an
expected.json with what transformers computes for a few prompts of token ids:

  prompts        lists of token ids (the first has more tokens than Mistral's
                 sliding window, so the window matters)
  logits         for each prompt, every position's logits (float32, eval mode,
                 one forward pass over the whole prompt)
  greedy         for each prompt, 12 greedy tokens (model.generate, do_sample
                 False, no eos stop) continuing it
  features       what the model exercises (rope scaling, window, biases, ...)

The weights are re-drawn after construction so that logits are O(1) rather
than the near-zero values of HF's 0.02-std init: matrices N(0, 1/fan_in),
norm weights 1 + N(0, 0.1^2), biases N(0, 0.1^2). Every norm weight and bias
therefore matters, and a 1e-4 tolerance is a real test.

Models (odd shapes on purpose):
  tiny-llama       GQA 4 q / 2 kv heads, head_dim 16, separate lm_head
  tiny-llama3      rope_scaling llama3 (factor 8, low 1, high 4, original 16),
                   tied embeddings, theta 500000
  tiny-llama-linear rope_scaling linear (factor 2)
  tiny-mistral     8 q / 2 kv heads, head_dim 8, sliding_window 8
  tiny-qwen2       q/k/v biases, 4 q / 1 kv head, head_dim 24, tied embeddings
  tiny-gpt2        hidden 48, 4 heads (head_dim 12), 64 positions

This is the decoder's own fixture set; tools/make_decoder_fixtures.py (another
tool) makes tests/fixtures/decoders/ with tokenizers and GGUF copies.
Run:  HF_HUB_OFFLINE=1 python3 tools/make_decoder_logits.py [--out DIR]
"""

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

transformers.utils.logging.set_verbosity_error()

VOCAB = 96
PROMPTS = [
    [1, 17, 42, 5, 88, 23, 61, 9, 30, 77, 14, 2, 50, 66, 3, 91, 45, 12, 8, 70],
    [1, 33, 7],
    [64],
]


def llama_common(**kw):
    base = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                max_position_embeddings=64, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                tie_word_embeddings=False, attn_implementation="eager")
    base.update(kw)
    return base


def models():
    yield "tiny-llama", LlamaForCausalLM, LlamaConfig(**llama_common(rope_theta=10000.0)), \
        {"rope": "default", "tied": False}
    yield "tiny-llama3", LlamaForCausalLM, LlamaConfig(**llama_common(
        rope_theta=500000.0, tie_word_embeddings=True,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 16})), \
        {"rope": "llama3", "tied": True}
    yield "tiny-llama-linear", LlamaForCausalLM, LlamaConfig(**llama_common(
        rope_theta=10000.0, rope_scaling={"rope_type": "linear", "factor": 2.0})), \
        {"rope": "linear", "tied": False}
    yield "tiny-mistral", MistralForCausalLM, MistralConfig(**llama_common(
        num_attention_heads=8, num_key_value_heads=2, head_dim=8, sliding_window=8,
        rope_theta=10000.0)), {"rope": "default", "sliding_window": 8}
    yield "tiny-qwen2", Qwen2ForCausalLM, Qwen2Config(**llama_common(
        hidden_size=96, num_attention_heads=4, num_key_value_heads=1, head_dim=24,
        rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False)), \
        {"rope": "default", "qkv_bias": True, "tied": True}
    yield "tiny-gpt2", GPT2LMHeadModel, GPT2Config(
        vocab_size=VOCAB, n_embd=48, n_layer=2, n_head=4, n_positions=64, bos_token_id=1,
        eos_token_id=2, attn_implementation="eager"), {"positions": "learned", "tied": True}


def redraw(model):
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                # GPT-2's Conv1D stores [in, out]; HF Linear [out, in].
                fan_in = p.shape[0] if "transformer.h." in name and name.endswith("weight") \
                    else p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
            elif "norm" in name or "ln_" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                   "fixtures", "decoder_logits"))
    args = ap.parse_args()
    for name, cls, cfg, features in models():
        torch.manual_seed(0)
        model = cls(cfg).eval()
        redraw(model)
        if getattr(cfg, "tie_word_embeddings", False):
            model.tie_weights()
        out = os.path.join(args.out, name)
        os.makedirs(out, exist_ok=True)
        model.save_pretrained(out, safe_serialization=True)
        logits, greedy = [], []
        with torch.no_grad():
            for p in PROMPTS:
                ids = torch.tensor([p])
                logits.append(model(ids).logits[0].float().tolist())
                gen = model.generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=None,
                                     pad_token_id=0, attention_mask=torch.ones_like(ids))
                greedy.append(gen[0, len(p):].tolist())
        with open(os.path.join(out, "expected.json"), "w") as f:
            json.dump({"prompts": PROMPTS, "logits": logits, "greedy": greedy,
                       "features": features, "transformers": transformers.__version__,
                       "torch": torch.__version__}, f)
        print(name, "max |logit|", max(abs(v) for r in logits[0] for v in r))


if __name__ == "__main__":
    main()
