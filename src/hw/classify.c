/*
 * The model classifier: says what kind of model a config.json describes
 * (text encoder, decoder, vision, audio, ...) so the planner and the CLI can
 * tell a user what a model is and whether this project runs it.
 *
 * A model_type found in the registry (registry.c, generated from transformers'
 * own auto mappings) is answered from its row with confidence 1.0. Anything
 * else -- a type newer than the registry, a custom fork, or every config when
 * the caller turns the registry off -- is inferred by the rule table below:
 * the first rule that matches wins. Rules look at three things, strongest
 * first: the class name in architectures[0] (what the checkpoint was saved
 * from), the config's keys (sub-configs, audio front-end or patch settings,
 * encoder-decoder flags), and finally fragments of the model_type name. Each
 * rule carries its confidence, and the reason string names the rule that
 * fired, so a wrong answer points at the row to fix.
 *
 * With the registry off nothing is looked up there at all (known stays false,
 * backends stays ""): that mode exists to measure the inference on its own.
 * tests/hw/test_classify.c measures both modes on every type transformers
 * knows.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "ia/hw.h"

/* What a family means when a rule says nothing more specific. */
typedef struct family_default {
    const char *modality;
    const char *tasks;
} family_default;

static const family_default family_defaults[IA_FAMILY_COUNT] = {
    [IA_FAMILY_UNKNOWN] = {"", ""},
    [IA_FAMILY_TEXT_ENCODER] = {"text", "fill-mask,feature-extraction,text-classification,"
                                        "token-classification"},
    [IA_FAMILY_TEXT_DECODER] = {"text", "text-generation"},
    [IA_FAMILY_ENCODER_DECODER] = {"text", "text2text-generation,translation,summarization"},
    [IA_FAMILY_VISION] = {"image", "image-classification,image-feature-extraction"},
    [IA_FAMILY_AUDIO] = {"audio", "automatic-speech-recognition,audio-classification"},
    [IA_FAMILY_MULTIMODAL] = {"text+image", "image-text-to-text"},
    [IA_FAMILY_VIDEO] = {"video", "video-classification"},
    [IA_FAMILY_TIME_SERIES] = {"time-series", "time-series-forecasting"},
    [IA_FAMILY_OTHER] = {"other", ""},
};

/* One inference rule. Every condition that is set must hold: `arch` is a
 * substring of architectures[0], `type` a substring of model_type, each of
 * `keys` is set in the config (present and neither null nor false) and none of
 * `without` is. A rule with only `without` never fires. */
typedef struct classify_rule {
    const char *name; /* named in the reason */
    const char *arch;
    const char *type;
    const char *keys[3];
    const char *without[3];
    ia_model_family family;
    double confidence;
    const char *modality; /* NULL: the family's default */
    const char *tasks;    /* NULL: the family's default */
} classify_rule;

#define F(x) IA_FAMILY_##x

static const classify_rule rules[] = {
    /* -- composites first: their class names look like text models' ---------------- */
    /* Omni models (vision + audio + text) and VLMs carry both sub-configs; the
     * head class (ForConditionalGeneration, ForCausalLM) says nothing more. */
    {"text+vision sub-configs", .keys = {"text_config", "vision_config"}, .family = F(MULTIMODAL),
     .confidence = 0.9},
    {"vision+audio sub-configs", .keys = {"vision_config", "audio_config"}, .family = F(MULTIMODAL),
     .confidence = 0.85, .modality = "text+image+audio"},
    /* SAM-style promptable segmenters carry a vision_config but no text. */
    {"mask decoder sub-config", .keys = {"mask_decoder_config"}, .family = F(VISION),
     .confidence = 0.8, .tasks = "mask-generation"},
    {"video sub-config", .keys = {"video_config"}, .family = F(VIDEO), .confidence = 0.7},
    {"image tokens", .keys = {"image_token_id"}, .family = F(MULTIMODAL), .confidence = 0.8},
    {"image token index", .keys = {"image_token_index"}, .family = F(MULTIMODAL),
     .confidence = 0.8},
    {"image quantizer sub-config", .keys = {"vq_config"}, .family = F(MULTIMODAL),
     .confidence = 0.75},
    {"thinker sub-config (omni)", .keys = {"thinker_config"}, .family = F(MULTIMODAL),
     .confidence = 0.75, .modality = "text+image+audio"},
    {"VLM sub-config", .keys = {"vlm_config"}, .family = F(MULTIMODAL), .confidence = 0.75},
    {"vision sub-config", .keys = {"vision_config"}, .family = F(MULTIMODAL), .confidence = 0.7},
    /* Open-vocabulary detectors: a detection head that also reads text. */
    {"detector with text sub-config", .arch = "ForObjectDetection", .keys = {"text_config"},
     .family = F(MULTIMODAL), .confidence = 0.85, .tasks = "zero-shot-object-detection"},
    {"backbone with text sub-config", .keys = {"backbone_config", "text_config"},
     .family = F(MULTIMODAL), .confidence = 0.6},
    {"2-D layout positions", .keys = {"max_2d_position_embeddings"}, .family = F(MULTIMODAL),
     .confidence = 0.6, .tasks = "document-question-answering,token-classification"},
    /* Audio settings outweigh a ForConditionalGeneration or ForCausalLM class: speech
     * and TTS models are seq2seq or decoders over audio tokens. */
    {"forecast lags", .keys = {"lags_sequence"}, .family = F(TIME_SERIES), .confidence = 0.85},
    {"audio codec sub-config", .keys = {"codec_config"}, .family = F(AUDIO), .confidence = 0.75,
     .modality = "text+audio", .tasks = "text-to-speech"},
    {"audio codebooks", .keys = {"num_codebooks"}, .family = F(AUDIO), .confidence = 0.7},
    {"mel front end", .keys = {"num_mel_bins"}, .without = {"text_config"}, .family = F(AUDIO),
     .confidence = 0.75},
    {"filter-bank input", .keys = {"input_feat_per_channel"}, .family = F(AUDIO), .confidence = 0.8,
     .modality = "text+audio", .tasks = "automatic-speech-recognition"},
    {"sampling rate", .keys = {"sampling_rate"}, .family = F(AUDIO), .confidence = 0.7},
    {"sample rate", .keys = {"sample_rate"}, .family = F(AUDIO), .confidence = 0.7},
    {"audio frame rate", .keys = {"frame_rate"}, .family = F(AUDIO), .confidence = 0.6},
    {"name: speech", .type = "speech", .family = F(AUDIO), .confidence = 0.6},
    {"name: asr", .type = "asr", .family = F(AUDIO), .confidence = 0.6},
    {"name: tts", .type = "tts", .family = F(AUDIO), .confidence = 0.6},
    {"name: codec", .type = "codec", .family = F(AUDIO), .confidence = 0.6},
    {"name: audio", .type = "audio", .family = F(AUDIO), .confidence = 0.6},
    {"name: music", .type = "music", .family = F(AUDIO), .confidence = 0.6,
     .modality = "text+audio", .tasks = "text-to-audio"},
    {"image-text-to-text class", .arch = "ImageTextToText", .family = F(MULTIMODAL),
     .confidence = 0.9},
    {"vision-to-text class", .arch = "Vision2Seq", .family = F(MULTIMODAL), .confidence = 0.9},
    {"vision-text class", .arch = "VisionText", .family = F(MULTIMODAL), .confidence = 0.9},
    {"vision encoder-decoder", .arch = "VisionEncoderDecoder", .family = F(MULTIMODAL),
     .confidence = 0.9, .tasks = "image-to-text"},
    {"speech encoder-decoder", .arch = "SpeechEncoderDecoder", .family = F(AUDIO),
     .confidence = 0.9, .modality = "text+audio", .tasks = "automatic-speech-recognition"},
    {"zero-shot detection class", .arch = "ZeroShot", .family = F(MULTIMODAL), .confidence = 0.9,
     .tasks = "zero-shot-object-detection"},
    {"retrieval class", .arch = "ForRetrieval", .family = F(MULTIMODAL), .confidence = 0.85,
     .tasks = "visual-document-retrieval"},
    {"visual question answering", .arch = "ForVisualQuestionAnswering", .family = F(MULTIMODAL),
     .confidence = 0.85, .tasks = "visual-question-answering"},

    /* -- the head class in architectures[0] --------------------------------------- */
    {"time-series prediction class", .arch = "ForPrediction", .family = F(TIME_SERIES),
     .confidence = 0.9},
    {"time-series class", .arch = "TimeSeries", .family = F(TIME_SERIES), .confidence = 0.9},
    {"video classification class", .arch = "ForVideoClassification", .family = F(VIDEO),
     .confidence = 0.9},
    {"CTC class", .arch = "ForCTC", .family = F(AUDIO), .confidence = 0.95,
     .tasks = "automatic-speech-recognition"},
    {"audio classification class", .arch = "ForAudioClassification", .family = F(AUDIO),
     .confidence = 0.95, .tasks = "audio-classification"},
    {"audio frame classification class", .arch = "ForAudioFrameClassification", .family = F(AUDIO),
     .confidence = 0.95, .tasks = "audio-classification"},
    {"x-vector class", .arch = "ForXVector", .family = F(AUDIO), .confidence = 0.95,
     .tasks = "audio-classification"},
    {"speech seq2seq class", .arch = "ForSpeechSeq2Seq", .family = F(AUDIO), .confidence = 0.95,
     .modality = "text+audio", .tasks = "automatic-speech-recognition"},
    {"speech-to-text class", .arch = "ForSpeechToText", .family = F(AUDIO), .confidence = 0.95,
     .modality = "text+audio", .tasks = "automatic-speech-recognition"},
    {"text-to-speech class", .arch = "ForTextToSpeech", .family = F(AUDIO), .confidence = 0.95,
     .modality = "text+audio", .tasks = "text-to-speech"},
    {"RNN-T class", .arch = "ForRNNT", .family = F(AUDIO), .confidence = 0.95,
     .tasks = "automatic-speech-recognition"},
    {"TDT class", .arch = "ForTDT", .family = F(AUDIO), .confidence = 0.95,
     .tasks = "automatic-speech-recognition"},
    {"image classification class", .arch = "ForImageClassification", .family = F(VISION),
     .confidence = 0.9, .tasks = "image-classification"},
    {"object detection class", .arch = "ForObjectDetection", .family = F(VISION), .confidence = 0.9,
     .tasks = "object-detection"},
    {"segmentation class", .arch = "Segmentation", .family = F(VISION), .confidence = 0.9,
     .tasks = "image-segmentation"},
    {"depth estimation class", .arch = "ForDepthEstimation", .family = F(VISION), .confidence = 0.9,
     .tasks = "depth-estimation"},
    {"keypoint class", .arch = "ForKeypoint", .family = F(VISION), .confidence = 0.9,
     .tasks = "keypoint-detection"},
    {"pose estimation class", .arch = "ForPoseEstimation", .family = F(VISION), .confidence = 0.9,
     .tasks = "keypoint-detection"},
    {"masked image modeling class", .arch = "ForMaskedImageModeling", .family = F(VISION),
     .confidence = 0.9},
    {"super-resolution class", .arch = "ForImageSuperResolution", .family = F(VISION),
     .confidence = 0.9, .tasks = "image-to-image"},
    {"image matting class", .arch = "ForImageMatting", .family = F(VISION), .confidence = 0.9},
    {"text recognition class", .arch = "ForTextRecognition", .family = F(VISION),
     .confidence = 0.85, .tasks = "image-to-text"},
    {"table recognition class", .arch = "ForTableRecognition", .family = F(VISION),
     .confidence = 0.85},
    {"vision backbone class", .arch = "Backbone", .family = F(VISION), .confidence = 0.8},
    /* Patches and a vocabulary: a model that reads both (ViLT, UDOP, Fuyu);
     * after the vision heads, whose masked-image models have a vocabulary too. */
    {"image patches with vocabulary", .keys = {"image_size", "patch_size", "vocab_size"},
     .family = F(MULTIMODAL), .confidence = 0.7},
    /* Seq2seq text models are saved from ForConditionalGeneration too, like VLMs and
     * speech models: only the encoder-decoder flags tell them apart from the rest. */
    {"seq2seq LM class", .arch = "ForSeq2SeqLM", .family = F(ENCODER_DECODER), .confidence = 0.9},
    {"conditional generation, audio front end", .arch = "ForConditionalGeneration",
     .keys = {"num_mel_bins"}, .family = F(AUDIO), .confidence = 0.85, .modality = "text+audio",
     .tasks = "automatic-speech-recognition"},
    {"conditional generation, audio sub-config", .arch = "ForConditionalGeneration",
     .keys = {"audio_config"}, .family = F(AUDIO), .confidence = 0.7, .modality = "text+audio",
     .tasks = "automatic-speech-recognition"},
    {"conditional generation, encoder-decoder flag", .arch = "ForConditionalGeneration",
     .keys = {"is_encoder_decoder"}, .family = F(ENCODER_DECODER), .confidence = 0.9},
    {"conditional generation, encoder and decoder layers", .arch = "ForConditionalGeneration",
     .keys = {"encoder_layers", "decoder_layers"}, .family = F(ENCODER_DECODER),
     .confidence = 0.85},
    {"conditional generation, decoder layers", .arch = "ForConditionalGeneration",
     .keys = {"num_decoder_layers"}, .family = F(ENCODER_DECODER), .confidence = 0.85},
    {"conditional generation, vision sub-config", .arch = "ForConditionalGeneration",
     .keys = {"vision_config"}, .family = F(MULTIMODAL), .confidence = 0.8},
    {"causal LM class", .arch = "ForCausalLM", .family = F(TEXT_DECODER), .confidence = 0.9},
    {"masked LM class", .arch = "ForMaskedLM", .family = F(TEXT_ENCODER), .confidence = 0.9},
    {"LM head (XLM style)", .arch = "WithLMHead", .family = F(TEXT_ENCODER), .confidence = 0.8},
    {"LM head", .arch = "LMHeadModel", .family = F(TEXT_DECODER), .confidence = 0.85},
    {"sequence classification class", .arch = "ForSequenceClassification",
     .family = F(TEXT_ENCODER), .confidence = 0.8, .tasks = "text-classification"},
    {"token classification class", .arch = "ForTokenClassification", .family = F(TEXT_ENCODER),
     .confidence = 0.8, .tasks = "token-classification"},
    {"question answering class", .arch = "ForQuestionAnswering", .family = F(TEXT_ENCODER),
     .confidence = 0.8, .tasks = "question-answering"},
    {"multiple choice class", .arch = "ForMultipleChoice", .family = F(TEXT_ENCODER),
     .confidence = 0.8, .tasks = "multiple-choice"},

    /* -- config keys: a bare base-model class, or no architectures at all --------- */
    {"forecast settings", .keys = {"prediction_length"}, .family = F(TIME_SERIES),
     .confidence = 0.8},
    {"forecast context", .keys = {"context_length", "num_input_channels"}, .family = F(TIME_SERIES),
     .confidence = 0.75},
    {"video frames", .keys = {"num_frames"}, .without = {"vocab_size"}, .family = F(VIDEO),
     .confidence = 0.7},
    {"video tubelets", .keys = {"tubelet_size"}, .family = F(VIDEO), .confidence = 0.75},
    {"audio+text sub-configs", .keys = {"audio_config", "text_config"}, .family = F(MULTIMODAL),
     .confidence = 0.6, .modality = "text+audio", .tasks = "audio-text-to-text"},
    {"audio sub-config", .keys = {"audio_config"}, .family = F(AUDIO), .confidence = 0.6},
    {"audio features and rate", .keys = {"feature_size", "sampling_rate"}, .family = F(AUDIO),
     .confidence = 0.75},
    {"waveform convolutions", .keys = {"conv_kernel", "conv_stride"}, .family = F(AUDIO),
     .confidence = 0.75},
    {"text sub-config", .keys = {"text_config"}, .without = {"vision_config"},
     .family = F(MULTIMODAL), .confidence = 0.5},
    {"image patches without vocabulary", .keys = {"image_size", "patch_size"},
     .without = {"vocab_size"}, .family = F(VISION), .confidence = 0.75},
    {"image channels without vocabulary", .keys = {"num_channels"}, .without = {"vocab_size"},
     .family = F(VISION), .confidence = 0.65},
    {"backbone config", .keys = {"backbone_config"}, .family = F(VISION), .confidence = 0.6},
    {"encoder-decoder flag", .keys = {"is_encoder_decoder"}, .family = F(ENCODER_DECODER),
     .confidence = 0.8},
    {"encoder and decoder layers", .keys = {"encoder_layers", "decoder_layers"},
     .family = F(ENCODER_DECODER), .confidence = 0.7},
    {"decoder start token", .keys = {"decoder_start_token_id", "vocab_size"},
     .without = {"is_decoder"}, .family = F(ENCODER_DECODER), .confidence = 0.6},
    {"offline RL state and action", .keys = {"state_dim", "act_dim"}, .family = F(OTHER),
     .confidence = 0.7, .modality = "other", .tasks = "reinforcement-learning"},
    /* The text tower of a dual encoder (CLIP, SigLIP) projects into the shared space. */
    {"projected text tower", .keys = {"projection_dim", "vocab_size"},
     .without = {"num_key_value_heads"}, .family = F(TEXT_ENCODER), .confidence = 0.6,
     .tasks = "feature-extraction"},
    {"projected text tower", .keys = {"projection_size", "vocab_size"},
     .without = {"num_key_value_heads"}, .family = F(TEXT_ENCODER), .confidence = 0.6,
     .tasks = "feature-extraction"},
    {"token types", .keys = {"vocab_size", "type_vocab_size"}, .family = F(TEXT_ENCODER),
     .confidence = 0.7},
    {"decoder flag", .keys = {"is_decoder"}, .family = F(TEXT_DECODER), .confidence = 0.7},
    {"grouped KV heads", .keys = {"num_key_value_heads"}, .family = F(TEXT_DECODER),
     .confidence = 0.7},
    {"rotary positions", .keys = {"rope_parameters", "vocab_size"}, .family = F(TEXT_DECODER),
     .confidence = 0.6},
    {"rotary base", .keys = {"rope_theta", "vocab_size"}, .family = F(TEXT_DECODER),
     .confidence = 0.6},
    {"tied embeddings and cache", .keys = {"tie_word_embeddings", "use_cache", "vocab_size"},
     .family = F(TEXT_DECODER), .confidence = 0.5},

    /* -- the class name's components (towers saved on their own) ------------------ */
    {"name: text tower", .type = "_text_model", .family = F(TEXT_ENCODER), .confidence = 0.5,
     .tasks = "feature-extraction"},
    {"acoustic tokenizer class", .arch = "Acoustic", .family = F(AUDIO), .confidence = 0.6},
    {"waveform class", .arch = "Wav", .family = F(AUDIO), .confidence = 0.6},
    {"vision tower class", .arch = "Vision", .family = F(VISION), .confidence = 0.6},
    {"audio tower class", .arch = "Audio", .family = F(AUDIO), .confidence = 0.6},
    {"speech tower class", .arch = "Speech", .family = F(AUDIO), .confidence = 0.6},

    /* -- the model_type's name: weakest, last -------------------------------------- */
    {"name: video", .type = "video", .family = F(VIDEO), .confidence = 0.5},
    {"name: esm (proteins)", .type = "esm", .family = F(OTHER), .confidence = 0.4,
     .modality = "protein"},
    {"name: vq", .type = "vq", .family = F(VISION), .confidence = 0.4},
    {"name: perceiver", .type = "perceiver", .family = F(MULTIMODAL), .confidence = 0.4},
    {"name: perceiver", .type = "perciever", .family = F(MULTIMODAL), .confidence = 0.4},
    {"name: qformer", .type = "qformer", .family = F(MULTIMODAL), .confidence = 0.4},
    {"name: vision", .type = "vision", .family = F(VISION), .confidence = 0.5},
    {"name: vit", .type = "vit", .family = F(VISION), .confidence = 0.5},
    {"name: detr", .type = "detr", .family = F(VISION), .confidence = 0.5},
    {"name: image", .type = "image", .family = F(VISION), .confidence = 0.4},
    {"name: sam", .type = "sam", .family = F(VISION), .confidence = 0.4},
    {"name: wav2vec", .type = "wav2vec", .family = F(AUDIO), .confidence = 0.5},
    {"name: whisper", .type = "whisper", .family = F(AUDIO), .confidence = 0.5},
    {"name: clip", .type = "clip", .family = F(MULTIMODAL), .confidence = 0.5},
    {"name: llava", .type = "llava", .family = F(MULTIMODAL), .confidence = 0.5},
    {"name: vl", .type = "vl", .family = F(MULTIMODAL), .confidence = 0.4},
    {"name: t5", .type = "t5", .family = F(ENCODER_DECODER), .confidence = 0.4},
    {"name: bart", .type = "bart", .family = F(ENCODER_DECODER), .confidence = 0.4},
    {"name: bert", .type = "bert", .family = F(TEXT_ENCODER), .confidence = 0.4},
    {"name: gpt", .type = "gpt", .family = F(TEXT_DECODER), .confidence = 0.4},
    {"name: llama", .type = "llama", .family = F(TEXT_DECODER), .confidence = 0.4},

    /* -- a vocabulary and nothing else: most such configs are decoders ------------ */
    {"vocabulary only", .keys = {"vocab_size"}, .family = F(TEXT_DECODER), .confidence = 0.3},
};

#undef F

/* Present and neither null nor false: `"is_decoder": false` is no evidence,
 * while `"decoder_start_token_id": 0` is. */
static bool key_set(const json_t *config, const char *key) {
    const json_t *v = json_object_get(config, key);
    return v && !json_is_null(v) && !json_is_false(v);
}

static bool rule_matches(const classify_rule *r, const json_t *config, const char *model_type,
                         const char *arch) {
    bool any = false;
    if (r->arch) {
        if (!arch[0] || !strstr(arch, r->arch))
            return false;
        any = true;
    }
    if (r->type) {
        if (!model_type[0] || !strstr(model_type, r->type))
            return false;
        any = true;
    }
    for (size_t i = 0; i < sizeof r->keys / sizeof r->keys[0] && r->keys[i]; i++) {
        if (!key_set(config, r->keys[i]))
            return false;
        any = true;
    }
    for (size_t i = 0; i < sizeof r->without / sizeof r->without[0] && r->without[i]; i++)
        if (key_set(config, r->without[i]))
            return false;
    return any;
}

/* "architectures[0] 'BertForMaskedLM' contains 'ForMaskedLM'" and the like. */
static void describe_rule(const classify_rule *r, const char *model_type, const char *arch,
                          char *out, size_t size) {
    if (r->arch)
        snprintf(out, size, "rule '%s': architectures[0] '%.60s' contains '%s'", r->name, arch,
                 r->arch);
    else if (r->type)
        snprintf(out, size, "rule '%s': model_type '%.60s' contains '%s'", r->name, model_type,
                 r->type);
    else
        snprintf(out, size, "rule '%s': config has %s%s%s%s%s", r->name, r->keys[0],
                 r->keys[1] ? " and " : "", r->keys[1] ? r->keys[1] : "", r->keys[2] ? " and " : "",
                 r->keys[2] ? r->keys[2] : "");
}

/* Copies a JSON string into a fixed buffer, truncating; "" for anything else. */
static void copy_json_string(char *dst, size_t size, const json_t *v) {
    snprintf(dst, size, "%s", json_is_string(v) ? json_string_value(v) : "");
}

/* Copies a comma-separated list, cutting at the last comma that fits so a
 * truncated list never ends in half a task name. */
static void copy_list(char *dst, size_t size, const char *src) {
    size_t n = strlen(src);
    if (n < size) {
        memcpy(dst, src, n + 1);
        return;
    }
    size_t cut = size - 1;
    while (cut > 0 && src[cut] != ',')
        cut--;
    memcpy(dst, src, cut);
    dst[cut] = '\0';
}

ia_status ia_model_classify(const struct json_t *config, const ia_classify_options *opts,
                            ia_model_class *out) {
    if (!out)
        return ia_error_set(IA_EINVAL, "classify: no output given");
    memset(out, 0, sizeof *out);
    if (!config || !json_is_object(config)) {
        snprintf(out->reason, sizeof out->reason, "config is not a JSON object");
        return ia_error_set(IA_EINVAL, "classify: config.json is not a JSON object");
    }
    bool use_registry = opts ? opts->use_registry : true;

    copy_json_string(out->model_type, sizeof out->model_type,
                     json_object_get(config, "model_type"));
    const json_t *archs = json_object_get(config, "architectures");
    if (json_is_array(archs) && json_array_size(archs) > 0)
        copy_json_string(out->architecture, sizeof out->architecture, json_array_get(archs, 0));

    if (use_registry) {
        const ia_model_type_info *row = ia_model_registry_find(out->model_type);
        if (row) {
            out->family = row->family;
            out->known = true;
            out->confidence = 1.0;
            snprintf(out->modality, sizeof out->modality, "%s", row->modality);
            copy_list(out->tasks, sizeof out->tasks, row->tasks);
            copy_list(out->backends, sizeof out->backends, row->backends);
            snprintf(out->reason, sizeof out->reason, "model_type '%.64s' in the registry",
                     out->model_type);
            return IA_OK;
        }
    }

    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const classify_rule *r = &rules[i];
        if (!rule_matches(r, config, out->model_type, out->architecture))
            continue;
        const family_default *d = &family_defaults[r->family];
        out->family = r->family;
        out->confidence = r->confidence;
        snprintf(out->modality, sizeof out->modality, "%s",
                 r->modality ? r->modality : d->modality);
        copy_list(out->tasks, sizeof out->tasks, r->tasks ? r->tasks : d->tasks);
        describe_rule(r, out->model_type, out->architecture, out->reason, sizeof out->reason);
        return IA_OK;
    }
    snprintf(out->reason, sizeof out->reason,
             "no rule matched (model_type '%.40s', architectures[0] '%.60s')", out->model_type,
             out->architecture);
    return IA_OK;
}
