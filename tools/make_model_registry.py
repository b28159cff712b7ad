#!/usr/bin/env python3
"""Make the model registry (src/hw/registry_table.c) and its test fixture
(tests/fixtures/model_types/) from what transformers itself knows.

For every model_type in transformers' CONFIG_MAPPING_NAMES this tool

  1. builds the default config (AutoConfig.for_model) and writes it the way a
     checkpoint's config.json looks: config.to_dict() plus "model_type" and an
     "architectures" list naming the class a checkpoint of that type usually
     carries (the auto mapping's class for the type's main task);
  2. derives the expected family, modality and tasks from transformers' auto
     mappings (task heads: MODEL_FOR_*_MAPPING_NAMES; inputs: the tokenizer,
     image-processor, feature-extractor, processor and video-processor
     mappings) by the explicit rules in `derive_family` below, corrected by the
     short OVERRIDES table where the mappings mislead.

Outputs (all deterministic for a given transformers version):
  tests/fixtures/model_types/configs.jsonl   one line per type that built:
        {"model_type", "family", "modality", "tasks", "config": {...}}
  tests/fixtures/model_types/README.md       how it was made, types that failed
  src/hw/registry_table.c                    the C table, sorted by model_type

The classifier (src/hw/classify.c) never sees these rules: the test classifies
the fixture's configs with the registry on (lookup) and off (inference from the
config alone) and measures how often each gets the family right.

Run:  python3 tools/make_model_registry.py [--root .]
"""

import argparse
import json
import logging
import os
import sys
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore")

import transformers  # noqa: E402
from transformers import AutoConfig  # noqa: E402
import importlib  # noqa: E402

# Imported as submodules: through the lazy `transformers.models.auto` package the
# processor modules turn into placeholders that demand Pillow, which the mapping
# tables themselves do not need.
_auto = "transformers.models.auto."
configuration_auto = importlib.import_module(_auto + "configuration_auto")
feature_extraction_auto = importlib.import_module(_auto + "feature_extraction_auto")
image_processing_auto = importlib.import_module(_auto + "image_processing_auto")
modeling_auto = importlib.import_module(_auto + "modeling_auto")
processing_auto = importlib.import_module(_auto + "processing_auto")
tokenization_auto = importlib.import_module(_auto + "tokenization_auto")
video_processing_auto = importlib.import_module(_auto + "video_processing_auto")

logging.disable(logging.WARNING)

# ---- what this project runs today ---------------------------------------------------
# The model types the C engine executes (the rows of src/models/arch_table.c, the
# generic BERT-family encoder on the CPU backend). Keep in step with that table:
# tests/hw/test_classify.c checks that the "cpu" rows and the arch table agree.
SUPPORTED_BACKENDS = {
    "bert": "cpu",
    "roberta": "cpu",
    "xlm-roberta": "cpu",
    "distilbert": "cpu",
    "mpnet": "cpu",
}

# ---- task mappings -----------------------------------------------------------------
# The auto mapping (MODEL_FOR_<KEY>_MAPPING_NAMES; "BASE" is MODEL_MAPPING_NAMES) ->
# the HF pipeline tag it stands for. None: the mapping says nothing about a task
# (pre-training heads, backbones, ...).
TASK_OF_MAPPING = {
    "CAUSAL_LM": "text-generation",
    "MASKED_LM": "fill-mask",
    "SEQ_TO_SEQ_CAUSAL_LM": "text2text-generation",
    "SEQUENCE_CLASSIFICATION": "text-classification",
    "TOKEN_CLASSIFICATION": "token-classification",
    "QUESTION_ANSWERING": "question-answering",
    "TABLE_QUESTION_ANSWERING": "table-question-answering",
    "MULTIPLE_CHOICE": "multiple-choice",
    "TEXT_ENCODING": "feature-extraction",
    "IMAGE_CLASSIFICATION": "image-classification",
    "OBJECT_DETECTION": "object-detection",
    "IMAGE_SEGMENTATION": "image-segmentation",
    "SEMANTIC_SEGMENTATION": "image-segmentation",
    "INSTANCE_SEGMENTATION": "image-segmentation",
    "UNIVERSAL_SEGMENTATION": "image-segmentation",
    "DEPTH_ESTIMATION": "depth-estimation",
    "MASK_GENERATION": "mask-generation",
    "KEYPOINT_DETECTION": "keypoint-detection",
    "KEYPOINT_MATCHING": "keypoint-matching",
    "POSE_ESTIMATION": "keypoint-detection",
    "IMAGE_TO_IMAGE": "image-to-image",
    "IMAGE": "image-feature-extraction",
    "TEXT_RECOGNITION": "image-to-text",
    "CTC": "automatic-speech-recognition",
    "SPEECH_SEQ_2_SEQ": "automatic-speech-recognition",
    "RNNT": "automatic-speech-recognition",
    "TDT": "automatic-speech-recognition",
    "AUDIO_CLASSIFICATION": "audio-classification",
    "TEXT_TO_WAVEFORM": "text-to-speech",
    "TEXT_TO_SPECTROGRAM": "text-to-speech",
    "IMAGE_TEXT_TO_TEXT": "image-text-to-text",
    "VISUAL_QUESTION_ANSWERING": "visual-question-answering",
    "DOCUMENT_QUESTION_ANSWERING": "document-question-answering",
    "ZERO_SHOT_IMAGE_CLASSIFICATION": "zero-shot-image-classification",
    "ZERO_SHOT_OBJECT_DETECTION": "zero-shot-object-detection",
    "VIDEO_CLASSIFICATION": "video-classification",
    "TIME_SERIES_PREDICTION": "time-series-forecasting",
    "TIME_SERIES_CLASSIFICATION": "time-series-classification",
    "TIME_SERIES_REGRESSION": "time-series-regression",
    "DECISION": "reinforcement-learning",
    "RETRIEVAL": "visual-document-retrieval",
}

# Groups of mappings the family rules test for.
AUDIO_TASKS = {"CTC", "SPEECH_SEQ_2_SEQ", "RNNT", "TDT", "AUDIO_CLASSIFICATION",
               "AUDIO_FRAME_CLASSIFICATION", "AUDIO_XVECTOR", "TEXT_TO_WAVEFORM",
               "TEXT_TO_SPECTROGRAM"}
MULTIMODAL_TASKS = {"IMAGE_TEXT_TO_TEXT", "MULTIMODAL_LM", "VISUAL_QUESTION_ANSWERING",
                    "ZERO_SHOT_IMAGE_CLASSIFICATION", "ZERO_SHOT_OBJECT_DETECTION",
                    "RETRIEVAL"}
VISION_TASKS = {"IMAGE_CLASSIFICATION", "OBJECT_DETECTION", "IMAGE_SEGMENTATION",
                "SEMANTIC_SEGMENTATION", "INSTANCE_SEGMENTATION", "UNIVERSAL_SEGMENTATION",
                "DEPTH_ESTIMATION", "MASK_GENERATION", "KEYPOINT_DETECTION",
                "KEYPOINT_MATCHING", "POSE_ESTIMATION", "IMAGE_TO_IMAGE", "IMAGE",
                "IMAGE_MATTING", "NORMAL_ESTIMATION", "POINTMAP_ESTIMATION",
                "MASKED_IMAGE_MODELING", "CAUSAL_IMAGE_MODELING", "BACKBONE",
                "TEXT_RECOGNITION", "TABLE_RECOGNITION"}
TIME_SERIES_TASKS = {"TIME_SERIES_PREDICTION", "TIME_SERIES_CLASSIFICATION",
                     "TIME_SERIES_REGRESSION"}
ENCODER_TEXT_TASKS = {"SEQUENCE_CLASSIFICATION", "TOKEN_CLASSIFICATION", "QUESTION_ANSWERING",
                      "MULTIPLE_CHOICE", "TABLE_QUESTION_ANSWERING", "NEXT_SENTENCE_PREDICTION",
                      "TEXT_ENCODING", "DOCUMENT_QUESTION_ANSWERING"}
# Mappings that name a model without saying what it is for: a type found only in
# these is a component (a vision tower, a text sub-config) or a bare model.
NEUTRAL_MAPPINGS = {"BASE", "PRETRAINING", "BACKBONE", "IMAGE", "TEXT_ENCODING"}

# The class a checkpoint of each family usually names in "architectures", best first.
ARCH_PREFERENCE = {
    "text-decoder": ["CAUSAL_LM", "BASE"],
    "text-encoder": ["MASKED_LM", "SEQUENCE_CLASSIFICATION", "TOKEN_CLASSIFICATION",
                     "QUESTION_ANSWERING", "TEXT_ENCODING", "BASE"],
    "encoder-decoder": ["SEQ_TO_SEQ_CAUSAL_LM", "BASE"],
    "vision": ["IMAGE_CLASSIFICATION", "OBJECT_DETECTION", "SEMANTIC_SEGMENTATION",
               "UNIVERSAL_SEGMENTATION", "INSTANCE_SEGMENTATION", "DEPTH_ESTIMATION",
               "MASK_GENERATION", "KEYPOINT_DETECTION", "KEYPOINT_MATCHING", "POSE_ESTIMATION",
               "IMAGE_TO_IMAGE", "TEXT_RECOGNITION", "TABLE_RECOGNITION", "IMAGE_MATTING",
               "BASE", "IMAGE", "BACKBONE"],
    "audio": ["CTC", "SPEECH_SEQ_2_SEQ", "RNNT", "TDT", "AUDIO_CLASSIFICATION",
              "TEXT_TO_WAVEFORM", "TEXT_TO_SPECTROGRAM", "AUDIO_FRAME_CLASSIFICATION",
              "MULTIMODAL_LM", "SEQ_TO_SEQ_CAUSAL_LM", "BASE"],
    "multimodal": ["IMAGE_TEXT_TO_TEXT", "MULTIMODAL_LM", "ZERO_SHOT_OBJECT_DETECTION",
                   "ZERO_SHOT_IMAGE_CLASSIFICATION", "VISUAL_QUESTION_ANSWERING",
                   "SEQ_TO_SEQ_CAUSAL_LM", "BASE"],
    "video": ["VIDEO_CLASSIFICATION", "UNIVERSAL_SEGMENTATION", "BASE"],
    "time-series": ["TIME_SERIES_PREDICTION", "TIME_SERIES_CLASSIFICATION", "BASE"],
    "other": ["BASE"],
}

# Types whose family the mappings get wrong or cannot tell. Keep this short and say why.
OVERRIDES = {
    # Forecasting models that only sit in MODEL_MAPPING (no time-series head mapping).
    "autoformer": ("time-series", None),
    "informer": ("time-series", None),
    "time_series_transformer": ("time-series", None),
    # Proteins: masked LMs over amino acids; hw.h files proteins under "other".
    "esm": ("other", "protein"),
    "esmc": ("other", "protein"),
    "esmfold2": ("other", "protein"),
    # Offline RL: a GPT over (return, state, action) triples.
    "decision_transformer": ("other", "other"),
    "jev": ("other", "other"),
    # Retrieval-augmented generation: a question encoder plus a BART/T5 generator.
    "rag": ("encoder-decoder", "text"),
    # A vision foundation model (RADIO) that only sits in MODEL_MAPPING.
    "radio": ("vision", "image"),
    # Registered under an older name for Step3p7's text model (a decoder).
    "step3p5": ("text-decoder", "text"),
    # VisualBERT reads text plus precomputed image-region features; only a tokenizer.
    "visual_bert": ("multimodal", "text+image"),
    # An audio LLM (music understanding) with only a processor mapping besides seq2seq.
    "musicflamingo": ("multimodal", "text+audio"),
    # Bare composites whose parts are given at load time; only a processor mapping.
    "vision-text-dual-encoder": ("multimodal", "text+image"),
    # An encoder-decoder's text half: not a decoder although its parent makes text.
    "t5gemma2_text": ("encoder-decoder", "text"),
    "t5gemma2_decoder": ("encoder-decoder", "text"),
    "t5_gemma_module": ("encoder-decoder", "text"),
    # A duplicate key transformers registers for Evolla's class name.
    "EvollaModel": ("multimodal", "text+protein"),
    "evolla": ("multimodal", "text+protein"),
}

# Name fragments of component configs (towers and sub-models of a composite), checked in
# order when a type has no task mapping of its own: the component's inputs decide.
COMPONENT_FRAGMENTS = [
    ("video", "video"),
    ("vision", "vision"), ("image", "vision"), ("vqgan", "vision"), ("vqmodel", "vision"),
    ("vit_model", "vision"), ("hiera", "vision"), ("sam_", "vision"),
    ("audio", "audio"), ("speech", "audio"), ("hifigan", "audio"), ("bigvgan", "audio"),
    ("token2wav", "audio"), ("acoustic", "audio"), ("asr", "audio"), ("transcribe", "audio"),
    ("diarization", "audio"), ("wav", "audio"), ("dit", "audio"), ("talker", "audio"),
    ("text", "text"), ("decoder", "parent"), ("encoder", "parent"),
]

FAMILIES = ["text-encoder", "text-decoder", "encoder-decoder", "vision", "audio",
            "multimodal", "video", "time-series", "other"]

C_FAMILY = {
    "text-encoder": "IA_FAMILY_TEXT_ENCODER", "text-decoder": "IA_FAMILY_TEXT_DECODER",
    "encoder-decoder": "IA_FAMILY_ENCODER_DECODER", "vision": "IA_FAMILY_VISION",
    "audio": "IA_FAMILY_AUDIO", "multimodal": "IA_FAMILY_MULTIMODAL",
    "video": "IA_FAMILY_VIDEO", "time-series": "IA_FAMILY_TIME_SERIES",
    "other": "IA_FAMILY_OTHER",
}


def load_mappings():
    """{mapping key: {model_type: class name}} for every MODEL_*_MAPPING_NAMES."""
    maps = {}
    for name in dir(modeling_auto):
        if not (name.startswith("MODEL") and name.endswith("MAPPING_NAMES")):
            continue
        key = "BASE" if name == "MODEL_MAPPING_NAMES" else name[len("MODEL_FOR_"):-len("_MAPPING_NAMES")]
        table = {}
        for t, cls in getattr(modeling_auto, name).items():
            table[t] = cls[0] if isinstance(cls, (tuple, list)) else cls
        maps[key] = table
    return maps


def load_processors():
    return {
        "tokenizer": tokenization_auto.TOKENIZER_MAPPING_NAMES,
        "image": image_processing_auto.IMAGE_PROCESSOR_MAPPING_NAMES,
        "feature": feature_extraction_auto.FEATURE_EXTRACTOR_MAPPING_NAMES,
        "processor": processing_auto.PROCESSOR_MAPPING_NAMES,
        "video": video_processing_auto.VIDEO_PROCESSOR_MAPPING_NAMES,
    }


def modality_parts(t, heads, procs):
    """The inputs a type takes, from its processors and heads: a subset of
    {text, image, audio, video}."""
    parts = set()
    if t in procs["tokenizer"] or heads & ({"CAUSAL_LM", "MASKED_LM", "SEQ_TO_SEQ_CAUSAL_LM",
                                            "IMAGE_TEXT_TO_TEXT", "TEXT_TO_WAVEFORM",
                                            "TEXT_TO_SPECTROGRAM", "ZERO_SHOT_IMAGE_CLASSIFICATION",
                                            "ZERO_SHOT_OBJECT_DETECTION"} | ENCODER_TEXT_TASKS):
        parts.add("text")
    if t in procs["image"] or heads & (VISION_TASKS - {"BACKBONE"}) or heads & {"IMAGE_TEXT_TO_TEXT"}:
        parts.add("image")
    # A feature extractor without an image processor is an audio front end (the few
    # image feature extractors left in transformers come with an image processor).
    if (t in procs["feature"] and t not in procs["image"]) or heads & (AUDIO_TASKS - {"TEXT_TO_WAVEFORM", "TEXT_TO_SPECTROGRAM"}):
        parts.add("audio")
    if t in procs["video"] or "VIDEO_CLASSIFICATION" in heads:
        parts.add("video")
    return parts


def component_family(t, known):
    """Family of a component config (a tower of a composite) from its name, and the
    parent it inherits from (None when its own name decided); (None, None) when the
    name says nothing. `known` maps already-derived parent types to (family, heads)."""
    parent = None
    def norm(name):  # "kosmos-2.5" owns "kosmos_2_5_text_model"
        return name.replace("-", "_").replace(".", "_")
    for cand in sorted(known, key=len, reverse=True):
        if t != cand and norm(t).startswith(norm(cand) + "_"):
            parent = cand
            break
    # Only the part after the parent's name describes the component
    # ("videoprism_text_model" is a text tower, whatever "videoprism" says).
    rest = t[len(parent) + 1:] if parent else t
    for frag, kind in COMPONENT_FRAGMENTS:
        if frag not in rest:
            continue
        if kind == "text":
            # A composite that writes text (LLaVA-style) has a decoder inside; a
            # dual encoder (CLIP-style) has a text encoder.
            if parent is None:
                return None, None
            pfam, pheads = known[parent]
            writes = pheads & {"IMAGE_TEXT_TO_TEXT", "CAUSAL_LM", "MULTIMODAL_LM",
                               "SEQ_TO_SEQ_CAUSAL_LM", "SPEECH_SEQ_2_SEQ"}
            return ("text-decoder" if writes or pfam == "text-decoder" else "text-encoder"), None
        if kind == "parent":
            break
        return kind, None
    # "qwen2_audio_encoder": a bare encoder/decoder of a composite whose own name
    # says which input it serves.
    for frag, kind in COMPONENT_FRAGMENTS:
        if frag in t and kind not in ("text", "parent"):
            return kind, None
    if parent is not None:
        return known[parent][0], parent
    return None, None


def derive_family(t, heads, parts, known):
    """The family by explicit rules over the task heads and inputs, in order."""
    if t in OVERRIDES:
        return OVERRIDES[t][0], "override"
    # 1. Components (vision towers, text sub-configs, codec halves): no task head and no
    #    processor of their own; their name and their parent decide.
    if t not in known_top_level:
        fam, parent = component_family(t, known)
        if fam:
            return fam, ("component of " + parent) if parent else "component"
    # 2. Forecasting heads.
    if heads & TIME_SERIES_TASKS:
        return "time-series", "time-series head"
    # 3. Video: a video head, or video input without text.
    if "VIDEO_CLASSIFICATION" in heads or ("video" in parts and "text" not in parts):
        return "video", "video head or video input"
    # 4. Omni models (image-text-to-text models that also speak) are multimodal first.
    if "IMAGE_TEXT_TO_TEXT" in heads or ("MULTIMODAL_LM" in heads and "image" in parts):
        return "multimodal", "image-text-to-text head"
    # 5. Speech recognition / synthesis / audio classification heads.
    if heads & AUDIO_TASKS:
        return "audio", "audio head"
    # 6. Text with images (or audio, video) in one model: VLMs, CLIP-likes, audio LLMs,
    #    document models.
    if heads & MULTIMODAL_TASKS or ("text" in parts and parts & {"image", "audio", "video"}):
        return "multimodal", "multimodal head or text plus another input"
    # 7. Image heads or image-only input.
    if heads & VISION_TASKS or parts == {"image"}:
        return "vision", "vision head or image input"
    # 8. Audio input without text (codecs, encoders).
    if "audio" in parts:
        return "audio", "audio input"
    # 9. Text: seq2seq before masked before causal (BART has all three heads; BERT has
    #    a causal head too).
    if "SEQ_TO_SEQ_CAUSAL_LM" in heads:
        return "encoder-decoder", "seq2seq head"
    if "MASKED_LM" in heads:
        return "text-encoder", "masked-LM head"
    if "CAUSAL_LM" in heads:
        return "text-decoder", "causal-LM head"
    if heads & ENCODER_TEXT_TASKS or "text" in parts:
        return "text-encoder", "text classification heads or tokenizer"
    return "other", "no rule"


known_top_level = set()


def derive_tasks(family, heads, parts):
    tasks = []
    for key in sorted(heads):
        tag = TASK_OF_MAPPING.get(key)
        if key == "MULTIMODAL_LM":
            tag = "image-text-to-text" if "image" in parts else "audio-text-to-text" if "audio" in parts else "any-to-any"
        if key == "BASE":
            tag = {"vision": "image-feature-extraction", "text-encoder": "feature-extraction",
                   "multimodal": "feature-extraction", "audio": "feature-extraction"}.get(family)
        if family == "encoder-decoder" and key == "SEQ_TO_SEQ_CAUSAL_LM":
            tasks += ["translation", "summarization"]
        if tag and tag not in tasks:
            tasks.append(tag)
    if family == "time-series" and not any(x.startswith("time-series") for x in tasks):
        tasks.append("time-series-forecasting")
    if family == "text-decoder" and "text-generation" not in tasks:
        tasks.append("text-generation")
    if not tasks:
        tasks.append("feature-extraction")
    # The family's main task first, the rest in a fixed order.
    primary = {"text-encoder": "fill-mask", "text-decoder": "text-generation",
               "encoder-decoder": "text2text-generation", "vision": "image-classification",
               "audio": "automatic-speech-recognition", "multimodal": "image-text-to-text",
               "video": "video-classification", "time-series": "time-series-forecasting"}.get(family)
    tasks = sorted(set(tasks), key=lambda x: (x != primary, x))
    return tasks


def modality_name(family, parts, t):
    if t in OVERRIDES and OVERRIDES[t][1]:
        return OVERRIDES[t][1]
    if family == "time-series":
        return "time-series"
    if family == "audio":
        parts = parts | {"audio"}
    order = ["text", "image", "audio", "video"]
    got = [p for p in order if p in parts]
    if not got:
        got = {"text-encoder": ["text"], "text-decoder": ["text"], "encoder-decoder": ["text"],
               "vision": ["image"], "audio": ["audio"], "video": ["video"],
               "multimodal": ["text", "image"]}.get(family, ["other"])
    return "+".join(got)


def architecture_for(t, family, heads, maps, config):
    for key in ARCH_PREFERENCE[family]:
        if key in heads:
            return maps[key][t]
    for key in sorted(heads):
        return maps[key][t]
    # A component with no auto mapping: its standalone class if transformers has one.
    base = type(config).__name__
    if base.endswith("Config"):
        stem = base[: -len("Config")]
        for cand in (stem + "Model", stem + "ForConditionalGeneration"):
            try:
                if hasattr(transformers, cand):
                    return cand
            except Exception:
                pass
    return None


def finite(v):
    """The value with every inf/nan float written as the string Python's json module
    would otherwise emit bare ("Infinity", "NaN"): those tokens are not JSON, and
    strict parsers (jansson, the C side's) reject the whole line. The key stays, so a
    classifier that looks for its presence sees the same config."""
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, dict):
        return {k: finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [finite(x) for x in v]
    return v


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_table(path, rows, command):
    lines = [
        "/*",
        " * The model registry: every model_type transformers " + transformers.__version__ + " knows, with",
        " * its family, modality, tasks (HF pipeline tags) and the backends this project",
        " * runs it on. GENERATED -- do not edit by hand. Regenerate with:",
        " *   " + command,
        " * The family and tasks come from transformers' auto mappings by the rules in",
        " * tools/make_model_registry.py; rows are sorted by model_type (strcmp order) so",
        " * ia_model_registry_find can bisect.",
        " */",
        "#include <stddef.h>",
        "",
        "#include \"ia/hw.h\"",
        "",
        "/* Read by registry.c, which declares them the same way. */",
        "extern const ia_model_type_info hw_registry_rows[];",
        "extern const size_t hw_registry_count;",
        "",
        "/* clang-format off */",
        "const ia_model_type_info hw_registry_rows[] = {",
    ]
    for r in rows:
        lines.append("    {%s, %s, %s, %s, %s}," % (c_string(r["model_type"]), C_FAMILY[r["family"]],
                                                    c_string(r["modality"]), c_string(",".join(r["tasks"])),
                                                    c_string(r["backends"])))
    lines += ["};", "/* clang-format on */", "",
              "const size_t hw_registry_count = sizeof hw_registry_rows / sizeof hw_registry_rows[0];", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def write_readme(path, n_ok, failed, command):
    text = f"""# Model-type fixture

`configs.jsonl` holds one line per model_type that transformers {transformers.__version__} knows
and can build a default config for ({n_ok} types):

    {{"model_type": ..., "family": ..., "modality": ..., "tasks": [...], "config": {{...}}}}

`config` is `AutoConfig.for_model(model_type).to_dict()` with `"model_type"` set and an
`"architectures"` list naming the class a checkpoint of that type carries (the auto
mapping's class for the family's main task: `...ForCausalLM`, `...ForMaskedLM`,
`...ForConditionalGeneration`, the base model class, ...). Components without an auto
mapping (vision towers, text sub-configs) get their standalone class when transformers
has one, and no `architectures` otherwise. Nothing was dropped from the configs (the file
is well under 3 MB). Non-finite floats, which Python's json writes as the non-JSON
tokens `Infinity`/`NaN`, are written as the strings `"Infinity"`, `"-Infinity"`,
`"NaN"` so that strict parsers (jansson) read every line; the keys stay.

`family`, `modality` and `tasks` are derived from transformers' own auto mappings (task
heads and processor mappings) by the rules in `tools/make_model_registry.py`, plus its
short OVERRIDES table. The same rows are in `src/hw/registry_table.c`.
`tests/hw/test_classify.c` classifies every config with and without the registry.

Made with:

    {command}

Types whose default config could not be built ({len(failed)}; they are in the registry with
their derived family but have no line here):

"""
    for t, why in failed:
        text += f"- `{t}`: {why}\n"
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    command = "python3 tools/make_model_registry.py   # transformers==" + transformers.__version__

    maps = load_mappings()
    procs = load_processors()
    types = sorted(configuration_auto.CONFIG_MAPPING_NAMES)
    heads_of = {t: {k for k, m in maps.items() if t in m} for t in types}

    # Top-level types first (those with a task head of their own), so components can
    # look up their parent's family.
    known = {}
    for t in types:
        if heads_of[t] - NEUTRAL_MAPPINGS or t in procs["processor"]:
            known_top_level.add(t)
    derived = {}
    for pass_ in (0, 1):
        for t in types:
            is_top = t in known_top_level
            if (pass_ == 0) != is_top:
                continue
            parts = modality_parts(t, heads_of[t], procs)
            fam, rule = derive_family(t, heads_of[t], parts, known)
            if rule.startswith("component of "):
                parts = derived[rule[len("component of "):]][1]  # the parent's inputs
            derived[t] = (fam, parts, rule)
            known[t] = (fam, heads_of[t])

    rows, lines, failed = [], [], []
    for t in types:
        fam, parts, _ = derived[t]
        tasks = derive_tasks(fam, heads_of[t], parts)
        modality = modality_name(fam, parts, t)
        row = {"model_type": t, "family": fam, "modality": modality, "tasks": tasks,
               "backends": SUPPORTED_BACKENDS.get(t, "")}
        rows.append(row)
        try:
            cfg = AutoConfig.for_model(t)
            d = cfg.to_dict()
        except Exception as e:  # noqa: BLE001 -- report every failure, keep going
            msg = " ".join(str(e).split())
            failed.append((t, f"{type(e).__name__}: {msg[:160]}"))
            continue
        d["model_type"] = t
        arch = architecture_for(t, fam, heads_of[t], maps, cfg)
        if arch:
            d["architectures"] = [arch]
        else:
            d.pop("architectures", None)
        d = finite(d)
        line = {"model_type": t, "family": fam, "modality": modality, "tasks": tasks, "config": d}
        lines.append(json.dumps(line, separators=(",", ":"), sort_keys=False, default=str,
                                allow_nan=False))

    rows.sort(key=lambda r: r["model_type"].encode())
    fixture_dir = os.path.join(root, "tests", "fixtures", "model_types")
    os.makedirs(fixture_dir, exist_ok=True)
    with open(os.path.join(fixture_dir, "configs.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")
    write_readme(os.path.join(fixture_dir, "README.md"), len(lines), failed, command)
    write_table(os.path.join(root, "src", "hw", "registry_table.c"), rows, command)

    counts = {}
    for r in rows:
        counts[r["family"]] = counts.get(r["family"], 0) + 1
    print(f"{len(rows)} types, {len(lines)} configs, {len(failed)} failed", file=sys.stderr)
    print("families: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), file=sys.stderr)
    for t, why in failed:
        print(f"  failed: {t}: {why}", file=sys.stderr)


if __name__ == "__main__":
    main()
