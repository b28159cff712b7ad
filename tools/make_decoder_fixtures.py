#!/usr/bin/env python3
"""Make the tiny random-weight decoder fixtures under tests/fixtures/decoders/.

One directory per decoder architecture the C engine supports (gpt2, llama,
mistral, qwen2). Each is a complete HuggingFace model directory written by
save_pretrained (config.json, generation_config.json, model.safetensors,
tokenizer.json, tokenizer_config.json) plus expected.json with what
transformers computes:

  prompts: text, token ids (tokenizer.encode with the model's own special
  tokens: BOS for llama/mistral), logits for every position (float32, rounded
  to 7 significant digits), and the 64-token greedy continuation of
  model.generate(do_sample=False, max_new_tokens=64), EOS honoured as
  generation_config says (eos_honoured: true; a continuation may be shorter
  when the model emits EOS), with the smallest top-1/top-2 logit gap seen
  during generation (min_margin) so a reader can judge how fragile the
  comparison is.

The tokenizers are trained here with HF `tokenizers` on the committed corpus
(tests/fixtures/tokenizer/corpus.txt) with the pipeline of each family:
byte-level BPE with GPT-2's, Qwen2's and Llama-3's pre-tokenisers, and a
SentencePiece-style BPE with byte fallback and the LLaMA-2 normaliser and
decoder for mistral. tokenizer_config.json names PreTrainedTokenizerFast so
that transformers uses tokenizer.json as written, and carries the family's
chat template (ChatML for qwen2, Llama-3 for llama, Mistral [INST] for
mistral, none for gpt2).

chat_templates.json (beside the model directories) holds the chat templates
of six families (ChatML/Qwen, Llama-2, Llama-3, Mistral, Zephyr, Gemma) and,
for a few conversations, the text transformers' apply_chat_template renders,
which the C formatter must reproduce.

With --convert BIN, each model directory is also converted with our own
`BIN convert --model DIR -o DIR/model.gguf --type f32` (so the GGUF comes from
the C converter, not from llama.cpp's script).

Deterministic: fixed seeds; rerunning gives identical files.
Run:  HF_HUB_OFFLINE=1 python3 tools/make_decoder_fixtures.py [--out tests/fixtures/decoders]
          [--convert build/ipfs-accelerate]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import jinja2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "corpus.txt")

VOCAB = 500
HIDDEN = 64
INTERMEDIATE = 128
LAYERS = 2
HEADS = 4
KV_HEADS = 2
MAX_NEW = 64

PROMPTS = [
    "The quick brown fox",
    "Once upon a time, in a small village by the sea, there lived an old fisherman and his wife.",
    "Déjà vu: 42 ideas — naïve? ünïcödé 東京 ok",
]

# Written for this file: English lines that make the merges meet the prompts' words.
EXTRA_TEXT = """Once upon a time there lived a king and a queen in a small village by the sea.
The quick brown fox jumps over the lazy dog. The old fisherman and his wife lived in a hut.
Every day the fisherman went to the sea to catch fish, and every evening he came home.
You are a helpful assistant. What is the capital of France? The capital of France is Paris.
"""

QWEN2_PAT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_PAT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# ---- chat templates (the families' published Jinja templates, in spirit) ----

CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
          "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
          "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}"
          "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
          "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
          "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")

LLAMA2 = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
          "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
          "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
          "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
          "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
          "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
          "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
          "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
          "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
          "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")

MISTRAL = ("{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
           "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
           "{{- bos_token }}{%- for message in loop_messages %}"
           "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
           "{{- raise_exception('After the optional system message, conversation roles must alternate "
           "user/assistant/user/assistant/...') }}{%- endif %}{%- if message['role'] == 'user' %}"
           "{%- if loop.first and system_message is defined %}"
           "{{- '[INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}"
           "{%- else %}{{- '[INST] ' + message['content'] + ' [/INST]' }}{%- endif %}"
           "{%- elif message['role'] == 'assistant' %}{{- message['content'] + eos_token}}"
           "{%- else %}{{- raise_exception('Only user and assistant roles are supported, with the "
           "exception of an initial optional system message!') }}{%- endif %}{%- endfor %}")

ZEPHYR = ("{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
          "{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n"
          "{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n"
          "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
          "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")

GEMMA = ("{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"
         "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
         "{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = \"\" -%}"
         "{%- set loop_messages = messages -%}{%- endif -%}{%- for message in loop_messages -%}"
         "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
         "{{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}"
         "{%- endif -%}{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}"
         "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
         "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}"
         "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}"
         "{%- if add_generation_prompt -%}{{'<start_of_turn>model\n'}}{%- endif -%}")

CHAT_FAMILIES = [
    # family, template, bos, eos
    ("chatml", CHATML, "", "<|im_end|>"),
    ("llama3", LLAMA3, "<|begin_of_text|>", "<|eot_id|>"),
    ("llama2", LLAMA2, "<s>", "</s>"),
    ("mistral", MISTRAL, "<s>", "</s>"),
    ("zephyr", ZEPHYR, "<s>", "</s>"),
    ("gemma", GEMMA, "<bos>", "<eos>"),
]

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"}],
    [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "  Good morning  "},
        {"role": "assistant", "content": "Bonjour !"},
        {"role": "user", "content": "Thanks\nand bye"},
    ],
    [
        {"role": "user", "content": "Déjà vu?"},
        {"role": "assistant", "content": "Oui."},
        {"role": "user", "content": "东京"},
    ],
]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def corpus_lines():
    with open(CORPUS, encoding="utf-8") as f:
        lines = [ln.rstrip("\n") for ln in f]
    # Mostly Latin text keeps a 500-token vocabulary useful for the prompts.
    latin = [ln for ln in lines if ln and sum(ord(c) < 0x250 for c in ln) > 0.9 * len(ln)]
    return latin[:6000] + EXTRA_TEXT.splitlines() * 20


def train_bytelevel(pre_tok, specials, normalizer=None, ignore_merges=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tok
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    return tok


def make_gpt2_tokenizer():
    tok = train_bytelevel(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), ["<|endoftext|>"])
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    return tok, dict(bos="<|endoftext|>", eos="<|endoftext|>", template=None)


def make_qwen2_tokenizer():
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PAT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok = train_bytelevel(pre, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], normalizers.NFC())
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    return tok, dict(bos=None, eos="<|im_end|>", template=CHATML)


def make_llama3_tokenizer():
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PAT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tok = train_bytelevel(pre, specials, ignore_merges=True)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    return tok, dict(bos="<|begin_of_text|>", eos="<|eot_id|>", template=LLAMA3)


def make_sentencepiece_bpe():
    """LLaMA-2 / Mistral style: '▁' for spaces (normaliser), BPE over the whole
    normalised text, <0xNN> byte tokens for anything else (byte fallback)."""
    norm = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tok.normalizer = norm
    trainer_tok.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    specials = ["<unk>", "<s>", "</s>"]
    n_learned = VOCAB - len(specials) - 256
    trainer = trainers.BpeTrainer(vocab_size=n_learned + len(specials), special_tokens=specials,
                                  limit_alphabet=90, show_progress=False)
    trainer_tok.train_from_iterator(corpus_lines(), trainer=trainer)
    trained = json.loads(trainer_tok.to_str())["model"]
    vocab = {t: i for i, t in enumerate(specials)}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for t, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        if t not in vocab:
            vocab[t] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.add_special_tokens(specials)
    tok.normalizer = norm
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    return tok, dict(bos="<s>", eos="</s>", template=MISTRAL)


def perturb(model, scale):
    """Random weights large enough that logits are decisive, and every norm
    gain and bias away from 1/0 so a loader that skips one fails."""
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if p.dim() == 1 and ("norm" in name or "ln_" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * r)
            elif p.dim() == 1:
                p.copy_(0.2 * r)
            elif "wte" in name or "embed_tokens" in name or "lm_head" in name:
                p.copy_(0.5 * r)  # logits spread wide: greedy choices far from ties
            else:
                p.copy_(scale * r)


def build_model(name, tok, meta):
    vocab = tok.get_vocab_size(with_added_tokens=True)
    bos = tok.token_to_id(meta["bos"]) if meta["bos"] else None
    eos = tok.token_to_id(meta["eos"])
    common = dict(vocab_size=vocab, bos_token_id=bos, eos_token_id=eos, pad_token_id=None)
    if name == "gpt2":
        cfg = GPT2Config(n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_inner=INTERMEDIATE, n_positions=128,
                         activation_function="gelu_new", **common)
    elif name == "llama":
        cfg = LlamaConfig(hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, num_hidden_layers=LAYERS,
                          num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=256,
                          rms_norm_eps=1e-5, tie_word_embeddings=False,
                          rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                           "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                           "original_max_position_embeddings": 32},
                          **common)
    elif name == "mistral":
        cfg = MistralConfig(hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, num_hidden_layers=LAYERS,
                            num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=256,
                            rms_norm_eps=1e-5, sliding_window=16, tie_word_embeddings=False,
                            rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, **common)
    elif name == "qwen2":
        cfg = Qwen2Config(hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, num_hidden_layers=LAYERS,
                          num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=256,
                          rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False,
                          rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, **common)
    else:
        raise ValueError(name)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    perturb(model, 0.15)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    model.eval()
    return model


def legacy_rope_config(out, name):
    """transformers 5 writes rope_parameters; most published checkpoints (and
    llama.cpp's converter) use the older rope_theta + rope_scaling keys. llama
    and mistral get the older form, qwen2 keeps the new one, so loaders meet
    both. make_one checks that transformers reads the file back to the same
    model."""
    if name not in ("llama", "mistral"):
        return
    path = os.path.join(out, "config.json")
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    rope = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rope.pop("rope_theta")
    if rope.get("rope_type", "default") != "default":
        cfg["rope_scaling"] = rope
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def round7(a):
    return [float("%.7g" % x) for x in np.asarray(a, dtype=np.float32).ravel()]


def save_tokenizer(out, tok, meta):
    tok.save(os.path.join(out, "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": meta["bos"],
        "eos_token": meta["eos"],
        "model_max_length": 256,
        "clean_up_tokenization_spaces": False,
    }
    if meta["template"]:
        cfg["chat_template"] = meta["template"]
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")


def make_one(root, name, make_tok):
    out = os.path.join(root, name)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    tok, meta = make_tok()
    model = build_model(name, tok, meta)
    model.save_pretrained(out)
    legacy_rope_config(out, name)
    save_tokenizer(out, tok, meta)
    # transformers must read back exactly what we wrote.
    hf_tok = AutoTokenizer.from_pretrained(out)
    probe = torch.tensor([tok.encode(PROMPTS[1]).ids])
    with torch.no_grad():
        before = model(probe).logits
    model = AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager", dtype=torch.float32).eval()
    with torch.no_grad():
        assert torch.equal(before, model(probe).logits), f"{name}: config.json does not read back the same model"
    gen_cfg = model.generation_config
    eos = gen_cfg.eos_token_id
    prompts = []
    for text in PROMPTS:
        ids = tok.encode(text).ids
        assert ids == hf_tok(text)["input_ids"], (name, text)
        x = torch.tensor([ids])
        with torch.no_grad():
            logits = model(x).logits[0].float().numpy()
            gen = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=MAX_NEW,
                                 pad_token_id=eos, output_scores=True, return_dict_in_generate=True)
        new = gen.sequences[0, len(ids):].tolist()
        margins = []
        for s in gen.scores:
            top = torch.topk(s[0].float(), 2).values
            margins.append(float(top[0] - top[1]))
        prompts.append({
            "text": text,
            "ids": ids,
            "logits": round7(logits),
            "greedy": new,
            "greedy_text": tok.decode(new, skip_special_tokens=False),
            "finish": "eos" if (eos is not None and new and new[-1] == eos and len(new) < MAX_NEW) else "length",
            "min_margin": float("%.4g" % min(margins)),
        })
        log(f"{name}: {len(ids)} prompt tokens, {len(new)} generated, min margin {min(margins):.3g}")
    cfg = model.config
    expected = {
        "model_type": cfg.model_type,
        "vocab_size": cfg.vocab_size,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": eos,
        "eos_honoured": True,
        "max_new_tokens": MAX_NEW,
        "chat_template": meta["template"] is not None,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__},
        "prompts": prompts,
    }
    with open(os.path.join(out, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def make_chat_templates(root):
    tok = Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>"))
    families = []
    for fam, template, bos, eos in CHAT_FAMILIES:
        hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos or None, eos_token=eos,
                                     chat_template=template)
        cases = []
        for conv in CONVERSATIONS:
            for gen in (True, False):
                try:
                    text = hf.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
                    cases.append({"messages": conv, "add_generation_prompt": gen, "expected": text})
                except jinja2.exceptions.TemplateError as e:  # the template refuses this conversation
                    cases.append({"messages": conv, "add_generation_prompt": gen, "error": str(e)})
        families.append({"family": fam, "template": template, "bos_token": bos, "eos_token": eos, "cases": cases})
    with open(os.path.join(root, "chat_templates.json"), "w", encoding="utf-8") as f:
        json.dump({"transformers": transformers.__version__, "families": families}, f, indent=1,
                  ensure_ascii=False)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "decoders"))
    ap.add_argument("--convert", help="our ipfs-accelerate binary: also write <dir>/model.gguf with it")
    ap.add_argument("--only", help="comma-separated model names")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    makers = {"gpt2": make_gpt2_tokenizer, "llama": make_llama3_tokenizer, "mistral": make_sentencepiece_bpe,
              "qwen2": make_qwen2_tokenizer}
    names = args.only.split(",") if args.only else list(makers)
    for name in names:
        make_one(args.out, name, makers[name])
    make_chat_templates(args.out)
    if args.convert:
        for name in names:
            d = os.path.join(args.out, name)
            subprocess.run([args.convert, "convert", "--model", d, "-o", os.path.join(d, "model.gguf"),
                            "--type", "f32"], check=True)
    log("done")


if __name__ == "__main__":
    main()
