/*
 * hw: what this machine has, what a model is, and where it should run.
 *
 * Detection reads /proc and /sys (under a root prefix, so tests can feed
 * recorded trees), cpuid or HWCAP for SIMD features, and opens vendor
 * libraries (libcuda, NVML, HIP, OpenCL, Vulkan, OpenVINO) with dlopen only:
 * nothing here links a vendor library, and a probe that finds nothing records
 * why. The model registry knows every model_type that transformers knows, with
 * its family, modality and tasks; unknown types are classified from their
 * config. The planner estimates a model's memory and ranks the devices that
 * can run it. hw/ depends on base/ only: what the engine implements is passed
 * in by runtime/.
 */
#ifndef IA_HW_H
#define IA_HW_H

#include "ia/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- CPU ------------------------------------------------------------------ */

typedef enum ia_cpu_feature {
    IA_CPU_SSE4_2,
    IA_CPU_AVX,
    IA_CPU_AVX2,
    IA_CPU_FMA,
    IA_CPU_F16C,
    IA_CPU_AVX512F,
    IA_CPU_AVX512BW,
    IA_CPU_AVX512VL,
    IA_CPU_AVX512DQ,
    IA_CPU_AVX512_VNNI,
    IA_CPU_AVX512_BF16,
    IA_CPU_AVX512_FP16,
    IA_CPU_AVX_VNNI,
    IA_CPU_AMX_TILE,
    IA_CPU_AMX_INT8,
    IA_CPU_AMX_BF16,
    IA_CPU_SHA,
    IA_CPU_AES,
    IA_CPU_NEON,    /* Arm: asimd */
    IA_CPU_DOTPROD, /* Arm: asimddp */
    IA_CPU_I8MM,
    IA_CPU_ARM_BF16,
    IA_CPU_SVE,
    IA_CPU_SVE2,
    IA_CPU_FEATURE_COUNT
} ia_cpu_feature;

/* The feature's name as /proc/cpuinfo spells it ("avx512_bf16", "asimddp"). */
const char *ia_cpu_feature_name(ia_cpu_feature f);

typedef struct ia_hw_cpu {
    char arch[16];         /* "x86_64", "aarch64", ... (uname machine) */
    char vendor[64];       /* "GenuineIntel", "AuthenticAMD", "ARM", "Qualcomm", ... */
    char model[192];       /* "AMD EPYC 7B13", "Cortex-A78", ... ; "" when unknown */
    int sockets;           /* 0: unknown */
    int physical_cores;    /* 0: unknown */
    int logical_cores;     /* online logical CPUs */
    uint64_t features;     /* bit (1ull << ia_cpu_feature) per feature present */
    uint64_t cache_l1d;    /* bytes per instance; 0: unknown */
    uint64_t cache_l2;     /* bytes per instance */
    uint64_t cache_l3;     /* bytes per instance */
    char governor[32];     /* cpufreq scaling governor of cpu0; "" when none */
    uint32_t freq_max_khz; /* cpuinfo_max_freq of cpu0; 0: unknown */
    char soc[128];         /* Arm SoC ("Qualcomm Snapdragon 8 Gen 2 (SM8550)"); "" elsewhere */
    char soc_vendor[32];   /* "Qualcomm", "MediaTek", "Samsung", ... */
} ia_hw_cpu;

static inline bool ia_hw_cpu_has(const ia_hw_cpu *cpu, ia_cpu_feature f) {
    return (cpu->features >> f) & 1u;
}

/* ---- memory -------------------------------------------------------------- */

typedef struct ia_hw_memory {
    uint64_t total;        /* MemTotal, bytes */
    uint64_t available;    /* MemAvailable, bytes */
    int cgroup_version;    /* 0 none found, 1 or 2 */
    uint64_t cgroup_limit; /* bytes; 0: no limit */
    uint64_t cgroup_usage; /* bytes charged to the cgroup; 0: unknown */
    /* What a process here may really use: min(available, limit - usage). */
    uint64_t usable;
} ia_hw_memory;

typedef struct ia_hw_numa_node {
    int id;
    uint64_t memory_total; /* bytes */
    char cpulist[64];      /* "0-15,32-47" */
} ia_hw_numa_node;

typedef struct ia_hw_thermal {
    char zone[32]; /* "thermal_zone0" */
    char type[48]; /* "x86_pkg_temp", "cpu-thermal", ... */
    double celsius;
} ia_hw_thermal;

/* ---- accelerators ------------------------------------------------------------ */

typedef enum ia_device_kind {
    IA_DEVICE_CPU,
    IA_DEVICE_CUDA,
    IA_DEVICE_ROCM,
    IA_DEVICE_OPENCL,
    IA_DEVICE_VULKAN,
    IA_DEVICE_METAL,
    IA_DEVICE_KIND_COUNT
} ia_device_kind;

/* "cpu", "cuda", "rocm", "opencl", "vulkan", "metal". */
const char *ia_device_kind_name(ia_device_kind kind);

typedef struct ia_hw_device {
    ia_device_kind kind;
    int index;      /* per kind: cuda:0, cuda:1, ... */
    char name[128]; /* "NVIDIA H100 80GB HBM3", "pthread-AMD EPYC 7B13" */
    char vendor[64];
    char type[16];          /* "gpu", "cpu", "integrated-gpu", "accelerator", "other" */
    char arch[32];          /* "sm_90", "gfx90a", ... ; "" when not applicable */
    char driver[64];        /* driver version as the vendor writes it */
    char api_version[32];   /* OpenCL / Vulkan API version; CUDA driver API version */
    uint64_t memory_total;  /* bytes; 0: unknown */
    uint64_t memory_free;   /* bytes; 0: unknown */
    int compute_units;      /* SMs, CUs, OpenCL compute units; 0: unknown */
    int cc_major, cc_minor; /* CUDA compute capability; 0 elsewhere */
    char pci_bus[32];       /* "0000:3b:00.0" when known */
} ia_hw_device;

/* One per probe that ran: what it looked for, whether it found anything,
 * and in words why not ("libcuda.so.1: cannot open shared object file"). */
typedef struct ia_hw_probe {
    char name[24]; /* "cpu", "memory", "cgroup", "numa", "nvidia", "nvml", "rocm",
                      "opencl", "vulkan", "openvino", "apple", "soc", "thermal",
                      "cpufreq" */
    bool found;
    int n_devices;     /* devices this probe added */
    char message[256]; /* what was found, or why nothing was */
} ia_hw_probe;

/* A short measured micro-probe of this machine (see ia_hw_options.perf). */
typedef struct ia_hw_perf {
    bool measured;
    bool cached; /* read from the cache file rather than measured now */
    int threads;
    double mem_bandwidth_gbs; /* triad-like streaming bandwidth, GB/s (1e9) */
    double peak_gflops_f32;   /* FMA throughput from registers, GFLOP/s */
} ia_hw_perf;

typedef struct ia_hw_info {
    ia_hw_cpu cpu;
    ia_hw_memory memory;
    ia_hw_numa_node *numa;
    size_t n_numa;
    ia_hw_device *devices; /* accelerators only; the CPU is `cpu` */
    size_t n_devices;
    ia_hw_probe *probes;
    size_t n_probes;
    ia_hw_thermal *thermal;
    size_t n_thermal;
    char openvino_version[64]; /* "" when the runtime is absent */
    ia_hw_perf perf;
} ia_hw_info;

typedef struct ia_hw_options {
    /* Directory that stands for "/" when reading /proc and /sys; NULL or ""
     * for the live system. With a root, CPU features come from the recorded
     * /proc/cpuinfo rather than cpuid, and vendor libraries are not opened
     * unless `libraries` is set. */
    const char *root;
    bool libraries;        /* open vendor libraries (default true for the live system) */
    bool perf;             /* run (or read from cache) the bandwidth/GFLOP/s micro-probe */
    bool perf_fresh;       /* measure even when a cached result exists */
    const char *cache_dir; /* NULL: ${XDG_CACHE_HOME:-~/.cache}/ipfs-accelerate */
} ia_hw_options;

ia_hw_options ia_hw_options_default(void);

/* Detects what this machine (or the recorded tree under opts->root) has.
 * Probes that find nothing are not errors; they say why in info->probes.
 * Returns IA_ENOMEM only; *out owned by the caller (ia_hw_info_free). */
ia_status ia_hw_detect(const ia_hw_options *opts, ia_hw_info **out);
void ia_hw_info_free(ia_hw_info *info);

/* The probe record named `name`, or NULL. */
const ia_hw_probe *ia_hw_info_probe(const ia_hw_info *info, const char *name);

/* A new JSON object (caller json_decref's it) describing everything found. */
struct json_t *ia_hw_info_to_json(const ia_hw_info *info);

/* ---- model registry and classification ------------------------------------------ */

typedef enum ia_model_family {
    IA_FAMILY_UNKNOWN,
    IA_FAMILY_TEXT_ENCODER,    /* BERT, RoBERTa, ... */
    IA_FAMILY_TEXT_DECODER,    /* GPT-2, LLaMA, ... */
    IA_FAMILY_ENCODER_DECODER, /* T5, BART, Marian, ... */
    IA_FAMILY_VISION,          /* ViT, ResNet, DETR, ... */
    IA_FAMILY_AUDIO,           /* Wav2Vec2, Whisper, ... */
    IA_FAMILY_MULTIMODAL,      /* CLIP, LLaVA, ... */
    IA_FAMILY_VIDEO,           /* VideoMAE, TimeSformer, ... */
    IA_FAMILY_TIME_SERIES,     /* PatchTST, Informer, ... */
    IA_FAMILY_OTHER,           /* graphs, RL, proteins, ... */
    IA_FAMILY_COUNT
} ia_model_family;

/* "text-encoder", "text-decoder", "encoder-decoder", "vision", "audio",
 * "multimodal", "video", "time-series", "other", "unknown". */
const char *ia_model_family_name(ia_model_family family);
ia_status ia_model_family_parse(const char *name, ia_model_family *out);

typedef struct ia_model_type_info {
    const char *model_type; /* as config.json spells it */
    ia_model_family family;
    const char *modality; /* "text", "image", "audio", "video", "text+image", ... */
    const char *tasks;    /* comma-separated pipeline tags */
    const char *backends; /* comma-separated backends this project runs it on; "" none */
} ia_model_type_info;

/* The registry, sorted by model_type. */
const ia_model_type_info *ia_model_registry(size_t *n);
const ia_model_type_info *ia_model_registry_find(const char *model_type);

typedef struct ia_model_class {
    ia_model_family family;
    char model_type[64];   /* from the config; "" when absent */
    char architecture[96]; /* architectures[0]; "" when absent */
    char modality[32];
    char tasks[160];
    char backends[32]; /* where this project runs it; "" unsupported */
    bool known;        /* model_type found in the registry */
    double confidence; /* 1.0 for registry hits; lower for inferred classes */
    char reason[192];  /* how the class was reached */
} ia_model_class;

typedef struct ia_classify_options {
    bool use_registry; /* false: infer from architectures and config keys only */
} ia_classify_options;

/* Classifies a config.json object (a jansson object). Never fails on odd
 * content: unknown configs get IA_FAMILY_UNKNOWN and a reason. Returns
 * IA_EINVAL only when config is not a JSON object. */
ia_status ia_model_classify(const struct json_t *config, const ia_classify_options *opts,
                            ia_model_class *out);

/* ---- device choice ----------------------------------------------------------------- */

/* One device considered for a model, with the verdict and its reason. */
typedef struct ia_device_candidate {
    char id[32]; /* "cpu", "cuda:0", "opencl:1", ... */
    ia_device_kind kind;
    int index;
    char name[128];
    bool usable;
    uint64_t memory_available; /* bytes the model could use there */
    int rank;                  /* preference order among usable devices, 0 best; -1 unusable */
    char reason[192];          /* why it is usable (and how well it fits) or why not */
} ia_device_candidate;

typedef struct ia_device_request {
    uint64_t bytes_needed; /* the planner's estimate for the model and workload */
    ia_model_family family;
    /* Comma-separated device kinds the engine can run this model on in this
     * build ("cpu", "cpu,cuda"): hw/ does not know the engine, runtime/ does. */
    const char *implemented;
    const char *want; /* "auto" (or NULL), "cpu", "cuda", "cuda:1", ... */
    double headroom;  /* fraction of a device's memory kept free; 0: 0.10 */
} ia_device_request;

/* Ranks the CPU and every detected accelerator for a model: a device is
 * usable when the engine implements its kind here and the model fits in its
 * memory with headroom; usable devices are ordered by preference (accelerators
 * before the CPU, more free memory first). Fills up to cap candidates (all
 * devices when cap is large enough; *n is how many), and *chosen indexes the
 * pick: the best usable one for "auto", the named one otherwise. Returns
 * IA_ENOTFOUND when a named device does not exist, IA_EUNSUPPORTED when the
 * named (or, for auto, every) device is unusable; the message says why. */
ia_status ia_device_choose(const ia_hw_info *hw, const ia_device_request *req,
                           ia_device_candidate *list, size_t cap, size_t *n, size_t *chosen);

/* Parses "cpu", "cuda", "cuda:1", "auto" into a kind and index (-1 for any
 * index; kind IA_DEVICE_KIND_COUNT for "auto"). */
ia_status ia_device_parse(const char *text, ia_device_kind *kind, int *index);

#ifdef __cplusplus
}
#endif

#endif /* IA_HW_H */
