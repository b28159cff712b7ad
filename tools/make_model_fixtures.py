#!/usr/bin/env python3
"""Make the tiny random-weight model fixtures under tests/fixtures/models/.

One directory per architecture row that the C engine supports (BERT, RoBERTa,
XLM-RoBERTa, DistilBERT, MPNet) plus two BERT copies whose weights are stored in
float16 and bfloat16.  Each directory is a complete HuggingFace + sentence-
transformers model directory (config.json, model.safetensors, tokenizer.json,
vocab.txt for WordPiece, modules.json, 1_Pooling/config.json,
sentence_bert_config.json) and an expected.json with what transformers and
sentence-transformers compute for a handful of texts:

  texts, input_ids / token_type_ids (exactly what sentence-transformers feeds
  the model, truncated to max_seq_length incl. specials), last_hidden_state
  (unpadded, one text at a time, float32, eval mode), sentence_embedding
  (SentenceTransformer.encode, float32), max_seq_length, pooling, normalize,
  features (which architecture features the model uses).

The models are deliberately odd-shaped: hidden 36, 4 heads (head_dim 9),
intermediate 50, 2 layers, max_position_embeddings 64, and every LayerNorm
gamma/beta and every bias is perturbed away from its 1/0 initial value so that
a loader that forgets one of them fails the comparison.

Deterministic: fixed seeds, tokenizers trained on the text bundled below.
Run:  HF_HUB_OFFLINE=1 python3 tools/make_model_fixtures.py [--out tests/fixtures/models]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402
import transformers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402
import sentence_transformers  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer  # noqa: E402

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

MAX_SEQ_LENGTH = 24
HIDDEN = 36
HEADS = 4
INTERMEDIATE = 50
LAYERS = 2
MAX_POS = 64

# A little bundled text to train the tokenizers on (English with some
# French/German/Spanish so that the Unigram and byte-level vocabularies see
# non-ASCII). Written for this file.
CORPUS = """
The quick brown fox jumps over the lazy dog while the cat sleeps in the sun.
Content addressing names a block of data by the hash of its bytes, not by where it is stored.
A sentence embedding maps a piece of text to a vector so that similar meanings lie close together.
Transformers read every token of the input at once and let each token attend to all the others.
The encoder has an embedding layer, a stack of attention blocks, and a pooling step at the end.
Mean pooling averages the token vectors, ignoring the padding, and then the result is normalised.
Tokenizers split words into smaller pieces so that rare words can still be represented.
What is the capital of France? Paris is the capital of France, and Berlin is the capital of Germany.
Benchmarks should compare engines on the same machine, in the same run, with the same inputs.
The library is written in C and runs the models natively without Python at run time.
Memory bandwidth limits how fast the weights can be streamed from the main memory into the cores.
Hello world! This is a small test of the tokenizer, with numbers like 12345 and 3.14 and 2024.
Please remember to bring your umbrella, because the weather forecast says it will rain tomorrow.
She sells sea shells by the sea shore, and the shells she sells are surely sea shells.
Learning rates, batch sizes, and warm-up steps are the usual knobs when training a network.
Running, runner, runs, ran: the same root appears in many different forms of a word.
Unbelievable, unthinkable, unbreakable, and uncomfortable share the prefix un.
The peer-to-peer network stores files in blocks, and each block is identified by its CID.
Café, crème brûlée, naïve, résumé, and déjà vu are words borrowed from French.
Le chat dort sur le canapé pendant que le chien joue dans le jardin.
Der schnelle braune Fuchs springt über den faulen Hund, und die Straße ist nass.
El rápido zorro marrón salta sobre el perro perezoso en la mañana.
Ich möchte eine Tasse Kaffee, bitte. Je voudrais un café, s'il vous plaît.
Tokyo 東京, Beijing 北京, and Moscow Москва are large cities.
Attention scores are scaled by the inverse square root of the head dimension before the softmax.
Layer normalisation subtracts the mean and divides by the standard deviation, then scales and shifts.
The GELU activation is smooth, unlike the ReLU, and is used in most encoder models.
Relative position buckets let the model know how far apart two tokens are.
Rotary position embeddings rotate the query and key vectors by an angle that depends on the position.
A good test uses small random weights, odd shapes, and inputs that are longer than the limit.
""".strip()

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello",
    "Benchmarks should compare engines on the same machine, in the same run, with the same "
    "inputs, and a sentence that is much longer than the maximum sequence length must be truncated "
    "by the tokenizer before it reaches the model.",
    "Café crème, naïve résumé: déjà vu!",
    "IPFS names blocks by CID; numbers like 12345 and 3.14 appear too.",
    "What is the capital of France?",
    "Tokyo 東京 and Moscow Москва are unbelievably large cities \u2603.",
]
PAIR = ("What is the capital of France?", "Paris is the capital of France.")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- tokenizers

def _words(normalizer, pre_tokenizer):
    """Word frequencies of CORPUS after the tokenizer's own normalizer and pre-tokenizer."""
    freq = {}
    for line in CORPUS.splitlines():
        s = normalizer.normalize_str(line) if normalizer is not None else line
        for w, _ in pre_tokenizer.pre_tokenize_str(s):
            freq[w] = freq.get(w, 0) + 1
    return freq


def wordpiece_vocab(specials, normalizer, pre_tokenizer, size=700):
    """A deterministic WordPiece vocabulary (the tokenizers WordPieceTrainer breaks ties by hash
    order, so its output changes from run to run): specials, every character alone and as
    ##continuation, words seen at least twice, and 4-character prefixes / 3-character ##suffixes
    of the rest, so that rare words split into several pieces."""
    freq = _words(normalizer, pre_tokenizer)
    vocab = list(specials)
    seen = set(vocab)

    def add(t):
        if t not in seen and len(vocab) < size:
            seen.add(t)
            vocab.append(t)
    chars = sorted({c for w in freq for c in w})
    for c in chars:
        add(c)
    for c in chars:
        add("##" + c)
    for w in sorted((w for w in freq if freq[w] >= 2 and len(w) > 1), key=lambda w: (-freq[w], w)):
        add(w)
    rare = sorted(w for w in freq if freq[w] == 1 and len(w) >= 6)
    for w in rare:
        add(w[:4])
        add("##" + w[-3:])
    for w in sorted(w for w in freq if freq[w] == 1 and 1 < len(w) < 6):
        add(w)
    return {t: i for i, t in enumerate(vocab)}


def train_wordpiece(specials, unk, cls, sep, pad_is_first_pair_template):
    """Lower-casing BERT-style WordPiece tokenizer; specials get ids 0..len-1 in order."""
    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                            lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    vocab = wordpiece_vocab(specials, normalizer, pre_tokenizer)
    tok = Tokenizer(models.WordPiece(vocab, unk_token=unk, continuing_subword_prefix="##",
                                     max_input_chars_per_word=100))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece(prefix="##")
    cls_id, sep_id = tok.token_to_id(cls), tok.token_to_id(sep)
    if pad_is_first_pair_template == "bert":
        tok.post_processor = processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, cls_id), (sep, sep_id)])
    else:  # MPNet: <s> A </s></s> B </s>, no segment ids
        tok.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} {sep} $B {sep}",
            special_tokens=[(cls, cls_id), (sep, sep_id)])
    return tok


def train_bytelevel_bpe():
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE())
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=900, min_frequency=2, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False)
    return tok


def train_unigram():
    """A deterministic Unigram (SentencePiece-style) model: every character, and the substrings
    (up to 8 characters) of the Metaspace words that occur at least twice, scored by the log of
    their relative frequency. (The tokenizers UnigramTrainer is not deterministic from run to run.)"""
    import math
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(" {2,}", " ")])
    pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    freq = _words(normalizer, pre_tokenizer)
    counts = {}
    for w, f in freq.items():
        for i in range(len(w)):
            for j in range(i + 1, min(len(w), i + 8) + 1):
                counts[w[i:j]] = counts.get(w[i:j], 0) + f
    chars = sorted(p for p in counts if len(p) == 1)
    multi = sorted((p for p in counts if len(p) > 1 and counts[p] >= 2), key=lambda p: (-counts[p] * len(p), p))
    pieces = chars + multi[:500]
    total = sum(counts[p] for p in pieces)
    vocab = [(t, 0.0) for t in specials] + [(p, round(math.log(counts[p] / total), 6)) for p in pieces]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.add_special_tokens(specials)
    tok.add_special_tokens(["<mask>"])  # XLM-R keeps <mask> as the last id
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return tok


def hf_tokenizer(tok, kind):
    """Wrap a tokenizers.Tokenizer as a fast HF tokenizer (its tokenizer.json is used as is)."""
    if kind == "bert":
        kw = dict(unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]",
                  model_input_names=["input_ids", "token_type_ids", "attention_mask"])
    elif kind == "distilbert":
        kw = dict(unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]",
                  model_input_names=["input_ids", "attention_mask"])
    else:  # roberta, xlm-roberta, mpnet
        kw = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", sep_token="</s>", pad_token="<pad>",
                  cls_token="<s>", mask_token="<mask>", model_input_names=["input_ids", "attention_mask"])
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=MAX_POS, **kw)


# --------------------------------------------------------------------------- models

def make_config(arch, vocab_size):
    common = dict(vocab_size=vocab_size, max_position_embeddings=MAX_POS, initializer_range=0.1)
    if arch == "bert":
        return transformers.BertConfig(hidden_size=HIDDEN, num_attention_heads=HEADS, intermediate_size=INTERMEDIATE,
                                       num_hidden_layers=LAYERS, type_vocab_size=2, pad_token_id=0, **common)
    if arch == "roberta":
        return transformers.RobertaConfig(hidden_size=HIDDEN, num_attention_heads=HEADS, intermediate_size=INTERMEDIATE,
                                          num_hidden_layers=LAYERS, type_vocab_size=1, pad_token_id=1,
                                          bos_token_id=0, eos_token_id=2, **common)
    if arch == "xlm-roberta":
        return transformers.XLMRobertaConfig(hidden_size=HIDDEN, num_attention_heads=HEADS,
                                             intermediate_size=INTERMEDIATE, num_hidden_layers=LAYERS,
                                             type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                                             **common)
    if arch == "distilbert":
        return transformers.DistilBertConfig(dim=HIDDEN, n_heads=HEADS, hidden_dim=INTERMEDIATE, n_layers=LAYERS,
                                             pad_token_id=0, sinusoidal_pos_embds=False, **common)
    if arch == "mpnet":
        return transformers.MPNetConfig(hidden_size=HIDDEN, num_attention_heads=HEADS, intermediate_size=INTERMEDIATE,
                                        num_hidden_layers=LAYERS, relative_attention_num_buckets=32, pad_token_id=1,
                                        bos_token_id=0, eos_token_id=2, **common)
    raise ValueError(arch)


MODEL_CLASS = {
    "bert": transformers.BertModel, "roberta": transformers.RobertaModel,
    "xlm-roberta": transformers.XLMRobertaModel, "distilbert": transformers.DistilBertModel,
    "mpnet": transformers.MPNetModel,
}


def make_model(arch, vocab_size, seed):
    torch.manual_seed(seed)
    cfg = make_config(arch, vocab_size)
    cfg._attn_implementation = "eager"
    model = MODEL_CLASS[arch](cfg).eval()
    # Perturb every LayerNorm gamma/beta and every bias deterministically.
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            lname = name.lower()
            if ("layernorm" in lname or "layer_norm" in lname) and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "relative_attention_bias" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
    return model


# --------------------------------------------------------------------------- fixture

FIXTURES = [
    # name, arch, tokenizer kind, pooling, normalize, storage dtype
    ("tiny-bert", "bert", "bert", "mean", True, "float32"),
    ("tiny-bert-f16", "bert", "bert", "mean", True, "float16"),
    ("tiny-bert-bf16", "bert", "bert", "mean", True, "bfloat16"),
    ("tiny-roberta", "roberta", "roberta", "max", False, "float32"),
    ("tiny-xlm-roberta", "xlm-roberta", "xlm-roberta", "mean_sqrt_len_tokens", False, "float32"),
    ("tiny-distilbert", "distilbert", "distilbert", "cls", False, "float32"),
    ("tiny-mpnet", "mpnet", "mpnet", "mean", True, "float32"),
]

SEEDS = {"bert": 1001, "roberta": 2002, "xlm-roberta": 3003, "distilbert": 4004, "mpnet": 5005}

FEATURES = {
    "bert": dict(position_embedding="absolute learned, position ids 0..n-1", token_type_embeddings=True,
                 relative_attention_bias=False, pooler_weights_present=True, activation="gelu (erf)",
                 tokenizer="WordPiece, lower-case, [CLS] A [SEP] (pair: [CLS] A [SEP] B [SEP], B has type 1)"),
    "roberta": dict(position_embedding="absolute learned, position ids start at padding_idx+1 = 2",
                    token_type_embeddings=True, type_vocab_size=1, relative_attention_bias=False,
                    pooler_weights_present=True, activation="gelu (erf)",
                    tokenizer="byte-level BPE, <s> A </s> (C side takes input_ids directly)"),
    "xlm-roberta": dict(position_embedding="absolute learned, position ids start at padding_idx+1 = 2",
                        token_type_embeddings=True, type_vocab_size=1, relative_attention_bias=False,
                        pooler_weights_present=True, activation="gelu (erf)",
                        tokenizer="Unigram (Metaspace), <s> A </s> (C side takes input_ids directly)"),
    "distilbert": dict(position_embedding="absolute learned, position ids 0..n-1", token_type_embeddings=False,
                       relative_attention_bias=False, pooler_weights_present=False, activation="gelu (erf)",
                       tokenizer="WordPiece, lower-case, [CLS] A [SEP]; model takes no token_type_ids"),
    "mpnet": dict(position_embedding="absolute learned, position ids start at padding_idx+1 = 2",
                  token_type_embeddings=False, relative_attention_bias=True, relative_attention_num_buckets=32,
                  relative_attention_bias_shared_across_layers=True, pooler_weights_present=True,
                  activation="gelu (erf)",
                  tokenizer="WordPiece, lower-case, specials <s>=0 <pad>=1 </s>=2 <unk>=3 <mask>=last, "
                            "<s> A </s> (pair: <s> A </s> </s> B </s>)"),
}


def floats(x):
    """Nested lists of Python floats holding exactly the float32 values (json prints repr)."""
    return np.asarray(x, dtype=np.float32).astype(np.float64).tolist()


def write_vocab_txt(tok, path):
    vocab = tok.get_vocab()
    inv = sorted(vocab.items(), key=lambda kv: kv[1])
    assert [i for _, i in inv] == list(range(len(inv))), "vocab ids not dense"
    with open(path, "w", encoding="utf-8") as f:
        for t, _ in inv:
            f.write(t + "\n")


def build_fixture(out_root, name, arch, tkind, pooling, normalize, storage, tokenizers_cache):
    d = os.path.join(out_root, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)

    if tkind not in tokenizers_cache:
        if tkind in ("bert", "distilbert"):
            tokenizers_cache[tkind] = train_wordpiece(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "[UNK]",
                                                      "[CLS]", "[SEP]", "bert")
        elif tkind == "mpnet":
            t = train_wordpiece(["<s>", "<pad>", "</s>", "<unk>"], "<unk>", "<s>", "</s>", "mpnet")
            t.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>"])
            t.add_special_tokens(["<mask>"])
            tokenizers_cache[tkind] = t
        elif tkind == "roberta":
            tokenizers_cache[tkind] = train_bytelevel_bpe()
        else:
            tokenizers_cache[tkind] = train_unigram()
    tok = tokenizers_cache[tkind]
    vocab_size = tok.get_vocab_size(with_added_tokens=True)

    model = make_model(arch, vocab_size, SEEDS[arch])
    hf_tok = hf_tokenizer(tok, tkind)

    # Write the directory in the classic sentence-transformers layout that the hub's models
    # (and the C loader) use: modules.json, sentence_bert_config.json, 1_Pooling/config.json
    # with the pooling_mode_* flags, Normalize as a module without files. It is then loaded
    # back with SentenceTransformer below, which checks that it reads it as intended.
    dt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[storage]
    model.to(dt).save_pretrained(d, safe_serialization=True)
    model.to(torch.float32)
    hf_tok.save_pretrained(d)
    tcfg_path = os.path.join(d, "tokenizer_config.json")
    with open(tcfg_path, encoding="utf-8") as f:
        tcfg = json.load(f)
    for k in ("is_local", "local_files_only"):
        tcfg.pop(k, None)
    tcfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    with open(tcfg_path, "w", encoding="utf-8") as f:
        json.dump(tcfg, f, indent=2, sort_keys=True)
        f.write("\n")
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    pool_cfg = {"word_embedding_dimension": HIDDEN,
                "pooling_mode_cls_token": pooling == "cls",
                "pooling_mode_mean_tokens": pooling == "mean",
                "pooling_mode_max_tokens": pooling == "max",
                "pooling_mode_mean_sqrt_len_tokens": pooling == "mean_sqrt_len_tokens",
                "pooling_mode_weightedmean_tokens": False,
                "pooling_mode_lasttoken": False,
                "include_prompt": True}
    os.makedirs(os.path.join(d, "1_Pooling"))
    files = {"modules.json": modules, "1_Pooling/config.json": pool_cfg,
             "sentence_bert_config.json": {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False},
             "config_sentence_transformers.json": {
                 "__version__": {"sentence_transformers": sentence_transformers.__version__,
                                 "transformers": transformers.__version__, "pytorch": torch.__version__},
                 "prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine"}}
    for rel, obj in files.items():
        with open(os.path.join(d, rel), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
    if tkind in ("bert", "distilbert", "mpnet"):
        write_vocab_txt(tok, os.path.join(d, "vocab.txt"))

    # Reload from disk exactly as a user would, in float32.
    st = SentenceTransformer(d, device="cpu", model_kwargs={"dtype": torch.float32, "attn_implementation": "eager"})
    st.eval()
    assert st.max_seq_length == MAX_SEQ_LENGTH, st.max_seq_length
    assert len(st) == (3 if normalize else 2), st
    assert type(st[1]).__name__ == "Pooling" and st[1].pooling_mode == pooling, st[1]
    assert not normalize or type(st[2]).__name__ == "Normalize", st
    tm = st[0].model
    assert next(tm.parameters()).dtype == torch.float32
    if storage != "float32":
        from safetensors import safe_open
        with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
            k = sorted(f.keys())[0]
            assert f.get_tensor(k).dtype == {"float16": torch.float16, "bfloat16": torch.bfloat16}[storage]

    # What sentence-transformers feeds the model: its own tokenize(), one text at a time.
    input_ids, token_type_ids, lhs = [], [], []
    for text in TEXTS:
        feats = st.tokenize([text])
        ids = feats["input_ids"][0].tolist()
        # Cross-check against the raw tokenizer.json the C side reads.
        raw = tok.encode(text).ids
        assert ids == raw[:MAX_SEQ_LENGTH - 1] + [raw[-1]] or ids == raw, (name, ids, raw)
        tt = feats["token_type_ids"][0].tolist() if "token_type_ids" in feats else [0] * len(ids)
        input_ids.append(ids)
        token_type_ids.append(tt)
        with torch.inference_mode():
            kw = {k: v for k, v in feats.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            out = tm(**kw).last_hidden_state[0]
        lhs.append(floats(out))
    assert any(len(i) == MAX_SEQ_LENGTH for i in input_ids), "no text reached max_seq_length"

    emb = st.encode(TEXTS, batch_size=32, convert_to_numpy=True)
    assert emb.dtype == np.float32

    # Independent check of the pooling (and normalisation) from the per-text hidden states.
    for i, h in enumerate(lhs):
        h = np.asarray(h, dtype=np.float64)
        if pooling == "mean":
            v = h.mean(0)
        elif pooling == "cls":
            v = h[0]
        elif pooling == "max":
            v = h.max(0)
        elif pooling == "mean_sqrt_len_tokens":
            v = h.sum(0) / np.sqrt(len(h))
        if normalize:
            v = v / max(np.linalg.norm(v), 1e-12)
        assert np.allclose(v, emb[i], atol=2e-5, rtol=1e-4), (name, i, np.abs(v - emb[i]).max())

    expected = {
        "model_type": tm.config.model_type,
        "storage_dtype": storage,
        "texts": TEXTS,
        "input_ids": input_ids,
        "token_type_ids": token_type_ids,
        "last_hidden_state": lhs,
        "sentence_embedding": floats(emb),
        "max_seq_length": MAX_SEQ_LENGTH,
        "pooling": pooling,
        "normalize": normalize,
        "hidden_size": HIDDEN,
        "layer_norm_eps": float(getattr(tm.config, "layer_norm_eps", 1e-12)),
        "features": FEATURES[arch],
        "notes": "input_ids are what SentenceTransformer.tokenize feeds the model (truncated to max_seq_length "
                 "incl. specials); last_hidden_state is unpadded, one text at a time, float32, eval mode; "
                 "sentence_embedding is SentenceTransformer.encode (batched) in float32."
                 + ("" if storage == "float32" else
                    f" Weights are stored as {storage}; expected outputs use those rounded weights upcast "
                    "to float32 and computed in float32."),
    }
    if arch == "bert":
        feats = st[0].tokenizer(PAIR[0], PAIR[1], return_tensors="pt", truncation=True, max_length=MAX_SEQ_LENGTH)
        raw = tok.encode(PAIR[0], PAIR[1])
        assert feats["input_ids"][0].tolist() == raw.ids and feats["token_type_ids"][0].tolist() == raw.type_ids
        assert 1 in raw.type_ids
        with torch.inference_mode():
            out = tm(input_ids=feats["input_ids"], attention_mask=feats["attention_mask"],
                     token_type_ids=feats["token_type_ids"]).last_hidden_state[0]
        expected["pair"] = {"text_a": PAIR[0], "text_b": PAIR[1], "input_ids": raw.ids,
                            "token_type_ids": raw.type_ids, "last_hidden_state": floats(out)}
    expected["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__,
                            "sentence_transformers": sentence_transformers.__version__,
                            "tokenizers": __import__("tokenizers").__version__}
    expected["command"] = "HF_HUB_OFFLINE=1 python3 tools/make_model_fixtures.py"
    with open(os.path.join(d, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(r, x)) for r, _, fs in os.walk(d) for x in fs)
    log(f"{name}: vocab {vocab_size}, lens {[len(i) for i in input_ids]}, {size/1024:.0f} KiB")
    return size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                                   "fixtures", "models"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    cache = {}
    total = 0
    for fx in FIXTURES:
        total += build_fixture(args.out, *fx, tokenizers_cache=cache)
    log(f"total {total/1024/1024:.2f} MiB in {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
