/*
 * Tests for the accelerator probes of hw/ (nvidia, nvml, rocm, opencl,
 * vulkan, openvino, apple).
 *
 * Three kinds of case. Recorded sysfs trees under tests/fixtures/hw/accel-*
 * check the ROCm probe field by field, including topologies it must refuse.
 * Library overrides (IA_HW_LIB_*) point each library probe at things that
 * are not its library -- a text file, libm, the CUDA toolkit's stub libcuda --
 * and check that the probe records why in words and adds no device; a fake
 * libcuda/NVML built with the tests checks how CUDA and NVML devices are
 * joined. The live machine's own drivers come last: PoCL through OpenCL and
 * lavapipe through Vulkan when they are installed (scripts/deps.sh installs
 * them), and an OpenVINO runtime when one can be found.
 */
#define _GNU_SOURCE
#include "test.h"
#include "test_fs.h"

#include "ia/hw.h"

#include <dlfcn.h>
#include <glob.h>
#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const lib_envs[] = {"IA_HW_LIB_CUDA",   "IA_HW_LIB_NVML",   "IA_HW_LIB_HIP",
                                       "IA_HW_LIB_OPENCL", "IA_HW_LIB_VULKAN", "IA_HW_LIB_OPENVINO",
                                       "IA_FAKE_CUDA_FAIL"};

static void clear_env(void) {
    for (size_t i = 0; i < sizeof lib_envs / sizeof lib_envs[0]; i++)
        unsetenv(lib_envs[i]);
}

static ia_hw_info *detect(const char *root, bool libraries) {
    ia_hw_options o = ia_hw_options_default();
    o.root = root;
    o.libraries = libraries;
    ia_hw_info *info = NULL;
    CHECK_OK(ia_hw_detect(&o, &info));
    if (!info) {
        fprintf(stderr, "ia_hw_detect returned no info\n");
        exit(1);
    }
    return info;
}

static int count_kind(const ia_hw_info *info, ia_device_kind kind) {
    int n = 0;
    for (size_t i = 0; i < info->n_devices; i++)
        n += info->devices[i].kind == kind;
    return n;
}

/* The n-th device of `kind`, or NULL. */
static const ia_hw_device *nth(const ia_hw_info *info, ia_device_kind kind, int n) {
    for (size_t i = 0; i < info->n_devices; i++)
        if (info->devices[i].kind == kind && n-- == 0)
            return &info->devices[i];
    return NULL;
}

static const char *msg(const ia_hw_info *info, const char *probe) {
    const ia_hw_probe *p = ia_hw_info_probe(info, probe);
    return p ? p->message : "(no such probe)";
}

#define CHECK_CONTAINS(hay, needle) \
    CHECK_MSG(strstr((hay), (needle)) != NULL, "\"%s\" lacks \"%s\"", (hay), (needle))
#define CHECK_STR(a, b) CHECK_MSG(strcmp((a), (b)) == 0, "\"%s\" != \"%s\"", (a), (b))

/* A text file that dlopen must refuse. */
static const char *not_a_library(void) {
    static char path[4096];
    if (!path[0]) {
        snprintf(path, sizeof path, "%s", scratch_path("not-a-library.so"));
        FILE *f = fopen(path, "w");
        if (!f || fputs("this is a text file, not a shared library\n", f) < 0) {
            perror(path);
            exit(1);
        }
        fclose(f);
    }
    return path;
}

/* The first path matching any of the patterns (static buffer), or NULL. */
static const char *first_match(const char *const *patterns, size_t n) {
    static char found[4096];
    for (size_t i = 0; i < n; i++) {
        glob_t g;
        bool hit = glob(patterns[i], 0, NULL, &g) == 0 && g.gl_pathc > 0;
        if (hit)
            snprintf(found, sizeof found, "%s", g.gl_pathv[g.gl_pathc - 1]);
        globfree(&g);
        if (hit)
            return found;
    }
    return NULL;
}

static bool loaded(const char *name) {
    void *h = dlopen(name, RTLD_NOW | RTLD_NOLOAD);
    if (h)
        dlclose(h);
    return h != NULL;
}

/* ---- a recorded tree: nothing from the live machine ----------------------------------- */

/* Runs first (cases run in the order they are written), before any other case
 * has loaded a vendor library into this process. */
TEST(recorded_root_opens_no_library) {
    static const char *const libs[] = {"libcuda.so.1",   "libnvidia-ml.so.1", "libOpenCL.so.1",
                                       "libvulkan.so.1", "libamdhip64.so",    IA_FAKE_NVIDIA_LIB};
    bool before[sizeof libs / sizeof libs[0]];
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++)
        before[i] = loaded(libs[i]);
    /* Even an explicit override must not be opened when libraries are off. */
    clear_env();
    for (size_t i = 0; i < 6; i++)
        setenv(lib_envs[i], IA_FAKE_NVIDIA_LIB, 1);

    ia_hw_info *info = detect(test_source_path("tests/fixtures/hw/accel-rocm"), false);
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++)
        CHECK_MSG(before[i] || !loaded(libs[i]), "%s was loaded from a recorded tree", libs[i]);
    CHECK_EQ_INT(info->n_devices, 2);
    CHECK_EQ_INT(count_kind(info, IA_DEVICE_ROCM), 2);
    static const char *const skipped[] = {"nvidia", "nvml", "opencl", "vulkan", "openvino"};
    for (size_t i = 0; i < sizeof skipped / sizeof skipped[0]; i++) {
        const ia_hw_probe *p = ia_hw_info_probe(info, skipped[i]);
        CHECK_MSG(p != NULL, "no %s probe record", skipped[i]);
        if (p) {
            CHECK(!p->found);
            CHECK_EQ_INT(p->n_devices, 0);
            CHECK_STR(p->message, "skipped: reading a recorded tree");
        }
    }
    CHECK_CONTAINS(msg(info, "rocm"), "HIP skipped: reading a recorded tree");
    CHECK_EQ_INT(info->openvino_version[0], 0);
#ifndef __APPLE__
    CHECK_STR(msg(info, "apple"), "not macOS");
#endif
    ia_hw_info_free(info);
    clear_env();
}

/* ---- ROCm from sysfs ------------------------------------------------------------------ */

TEST(rocm_mi250x_topology) {
    ia_hw_info *info = detect(test_source_path("tests/fixtures/hw/accel-rocm"), false);
    CHECK_EQ_INT(count_kind(info, IA_DEVICE_ROCM), 2);
    static const char *const pci[] = {"0000:c1:00.0", "0000:c6:00.0"};
    static const uint64_t used[] = {11911168ull, 4294967296ull};
    for (int i = 0; i < 2; i++) {
        const ia_hw_device *d = nth(info, IA_DEVICE_ROCM, i);
        CHECK(d != NULL);
        if (!d)
            continue;
        CHECK_EQ_INT(d->index, i);
        CHECK_STR(d->name, "AMD Instinct MI250X");
        CHECK_STR(d->vendor, "AMD");
        CHECK_STR(d->type, "gpu");
        CHECK_STR(d->arch, "gfx90a");
        CHECK_STR(d->driver, "6.8.5");
        CHECK_STR(d->api_version, "");
        CHECK_STR(d->pci_bus, pci[i]);
        CHECK_EQ_INT(d->compute_units, 110);
        CHECK_EQ_INT(d->memory_total, 68702699520ull);
        CHECK_EQ_INT(d->memory_free, 68702699520ull - used[i]);
        CHECK_EQ_INT(d->cc_major, 0);
    }
    const ia_hw_probe *p = ia_hw_info_probe(info, "rocm");
    CHECK(p && p->found && p->n_devices == 2);
    CHECK_CONTAINS(msg(info, "rocm"), "KFD topology: 2 GPUs (gfx90a, gfx90a)");

    json_t *j = ia_hw_info_to_json(info);
    json_t *dev = json_array_get(json_object_get(j, "devices"), 1);
    CHECK_STR(json_string_value(json_object_get(dev, "id")), "rocm:1");
    CHECK_STR(json_string_value(json_object_get(dev, "arch")), "gfx90a");
    CHECK_EQ_INT(json_integer_value(json_object_get(dev, "memory_total")), 68702699520ll);
    json_decref(j);
    ia_hw_info_free(info);
}

TEST(rocm_odd_and_broken_nodes) {
    ia_hw_info *info = detect(test_source_path("tests/fixtures/hw/accel-rocm-odd"), false);
    CHECK_EQ_INT(count_kind(info, IA_DEVICE_ROCM), 3);
    const ia_hw_device *d = nth(info, IA_DEVICE_ROCM, 0);
    if (d) { /* node 1: RDNA3, no render node */
        CHECK_STR(d->arch, "gfx1100");
        CHECK_STR(d->name, "AMD gfx1100 (0x744c)");
        CHECK_STR(d->type, "gpu");
        CHECK_STR(d->pci_bus, "0000:03:00.0");
        CHECK_EQ_INT(d->compute_units, 48);
        CHECK_EQ_INT(d->memory_total, 25753026560ull);
        CHECK_EQ_INT(d->memory_free, 0);
        CHECK_STR(d->driver, "");
    }
    d = nth(info, IA_DEVICE_ROCM, 1);
    if (d) { /* node 2: an APU sharing system memory */
        CHECK_STR(d->arch, "gfx942");
        CHECK_STR(d->type, "integrated-gpu");
        CHECK_EQ_INT(d->compute_units, 228);
        CHECK_EQ_INT(d->memory_total, 0);
    }
    d = nth(info, IA_DEVICE_ROCM, 2);
    if (d) { /* node 10: a GPU whose memory banks are nonsense */
        CHECK_STR(d->arch, "gfx90a");
        CHECK_EQ_INT(d->index, 2);
        CHECK_EQ_INT(d->memory_total, 0);
    }
    /* Nodes 3-9 are refused and the first reason is given. */
    CHECK_CONTAINS(msg(info, "rocm"), "7 nodes skipped (node 3: no readable simd_count)");
    CHECK_CONTAINS(msg(info, "rocm"), "3 GPUs (gfx1100, gfx942, gfx90a)");
    ia_hw_info_free(info);
}

TEST(rocm_without_kfd) {
    /* A tree with /sys but no KFD: the amdgpu driver is not loaded. */
    ia_hw_info *info = detect(test_source_path("tests/fixtures/hw/accel-rocm/sys/module"), false);
    CHECK_EQ_INT(info->n_devices, 0);
    const ia_hw_probe *p = ia_hw_info_probe(info, "rocm");
    CHECK(p && !p->found && p->n_devices == 0);
    CHECK_CONTAINS(msg(info, "rocm"), "no KFD topology");
    ia_hw_info_free(info);
}

/* ---- NVIDIA ------------------------------------------------------------------------------ */

/* Runs body in a child process and fails the case if any of its checks
 * failed. The CUDA stub's SONAME is libcuda.so.1, so once loaded it would
 * answer every later dlopen("libcuda.so.1") in this process, the live probes'
 * included; a child keeps it out. */
static void in_child(void (*body)(void)) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        int failed = test_failed_checks;
        body();
        fflush(stderr);
        _exit(test_failed_checks != failed ? 1 : 0); /* no atexit handlers: they are the parent's */
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed (status 0x%x)", status);
}

static const char *cuda_stub;

static void stub_body(void) {
    clear_env();
    setenv("IA_HW_LIB_CUDA", cuda_stub, 1);
    setenv("IA_HW_LIB_NVML", "/nonexistent/libnvidia-ml.so.1", 1); /* GPU hosts: keep NVML out */
    ia_hw_info *info = detect(NULL, true);
    const ia_hw_probe *p = ia_hw_info_probe(info, "nvidia");
    CHECK(p && !p->found && p->n_devices == 0);
    CHECK_CONTAINS(msg(info, "nvidia"), "cuInit failed: CUDA_ERROR_STUB_LIBRARY (34)");
    CHECK_EQ_INT(count_kind(info, IA_DEVICE_CUDA), 0);
    fprintf(stderr, "  nvidia: %s\n", msg(info, "nvidia"));
    ia_hw_info_free(info);
    clear_env();
}

TEST(cuda_toolkit_stub_says_so) {
    static const char *const stubs[] = {"/usr/local/cuda*/lib64/stubs/libcuda.so",
                                        "/usr/local/cuda*/targets/*/lib/stubs/libcuda.so"};
    cuda_stub = first_match(stubs, 2);
    if (!cuda_stub)
        SKIP("no CUDA toolkit stub libcuda.so under /usr/local/cuda*");
    in_child(stub_body);
}

TEST(cuda_and_nvml_broken_libraries) {
    clear_env();
    setenv("IA_HW_LIB_CUDA", not_a_library(), 1);
    setenv("IA_HW_LIB_NVML", not_a_library(), 1);
    ia_hw_info *info = detect(NULL, true);
    CHECK_EQ_INT(count_kind(info, IA_DEVICE_CUDA), 0);
    CHECK_CONTAINS(msg(info, "nvidia"), "libcuda not loaded: ");
    CHECK_CONTAINS(msg(info, "nvidia"), "not-a-library.so");
    CHECK_CONTAINS(msg(info, "nvidia"), "(from IA_HW_LIB_CUDA)");
    CHECK_CONTAINS(msg(info, "nvml"), "NVML not loaded: ");
    CHECK_CONTAINS(msg(info, "nvml"), "(from IA_HW_LIB_NVML)");
    fprintf(stderr, "  nvidia: %s\n  nvml: %s\n", msg(info, "nvidia"), msg(info, "nvml"));
    ia_hw_info_free(info);

    /* A real library that is not the one asked for. */
    setenv("IA_HW_LIB_CUDA", "libm.so.6", 1);
    setenv("IA_HW_LIB_NVML", "libm.so.6", 1);
    info = detect(NULL, true);
    CHECK_EQ_INT(count_kind(info, IA_DEVICE_CUDA), 0);
    CHECK_CONTAINS(msg(info, "nvidia"), "libcuda has no cuInit");
    CHECK_CONTAINS(msg(info, "nvml"), "NVML library has no nvmlInit_v2");
    ia_hw_info_free(info);
    clear_env();
}

TEST(cuda_devices_joined_with_nvml_by_pci) {
    clear_env();
    setenv("IA_HW_LIB_CUDA", IA_FAKE_NVIDIA_LIB, 1);
    setenv("IA_HW_LIB_NVML", IA_FAKE_NVIDIA_LIB, 1);
    ia_hw_info *info = detect(NULL, true);
    CHECK_EQ_INT(count_kind(info, IA_DEVICE_CUDA), 2);
    const ia_hw_device *a = nth(info, IA_DEVICE_CUDA, 0), *b = nth(info, IA_DEVICE_CUDA, 1);
    if (a && b) {
        CHECK_EQ_INT(a->index, 0);
        CHECK_STR(a->name, "IA Fake H100 80GB HBM3");
        CHECK_STR(a->vendor, "NVIDIA");
        CHECK_STR(a->type, "gpu");
        CHECK_STR(a->arch, "sm_90");
        CHECK_EQ_INT(a->cc_major, 9);
        CHECK_EQ_INT(a->cc_minor, 0);
        CHECK_EQ_INT(a->compute_units, 132);
        CHECK_STR(a->api_version, "13.0");
        CHECK_STR(a->driver, "580.65.06");
        CHECK_STR(a->pci_bus, "0000:3b:00.0");
        CHECK_EQ_INT(a->memory_total, 85031714816ull); /* libcuda's, not NVML's */
        CHECK_EQ_INT(a->memory_free, 84813938688ull);  /* NVML's, for this PCI address */
        CHECK_EQ_INT(b->index, 1);
        CHECK_STR(b->arch, "sm_80");
        CHECK_STR(b->pci_bus, "0000:86:00.0");
        CHECK_EQ_INT(b->memory_free, 1073741824ull);
    }
    const ia_hw_probe *p = ia_hw_info_probe(info, "nvidia");
    CHECK(p && p->found && p->n_devices == 2);
    CHECK_CONTAINS(msg(info, "nvidia"), "CUDA driver API 13.0: 2 devices");
    p = ia_hw_info_probe(info, "nvml");
    CHECK(p && p->found && p->n_devices == 0);
    CHECK_CONTAINS(msg(info, "nvml"), "NVML: driver 580.65.06, 2 GPUs; 2 matched");

    json_t *j = ia_hw_info_to_json(info);
    json_t *devs = json_object_get(j, "devices");
    for (size_t i = 0; i < json_array_size(devs); i++) {
        json_t *d = json_array_get(devs, i);
        if (strcmp(json_string_value(json_object_get(d, "id")), "cuda:0") == 0)
            CHECK_STR(json_string_value(json_object_get(d, "compute_capability")), "9.0");
    }
    json_decref(j);
    ia_hw_info_free(info);
    clear_env();
}

TEST(nvml_alone_when_cuda_fails) {
    clear_env();
    setenv("IA_HW_LIB_CUDA", IA_FAKE_NVIDIA_LIB, 1);
    setenv("IA_HW_LIB_NVML", IA_FAKE_NVIDIA_LIB, 1);
    setenv("IA_FAKE_CUDA_FAIL", "1", 1);
    ia_hw_info *info = detect(NULL, true);
    CHECK_CONTAINS(msg(info, "nvidia"), "cuInit failed: CUDA_ERROR_NO_DEVICE (100)");
    CHECK_EQ_INT(count_kind(info, IA_DEVICE_CUDA), 2);
    const ia_hw_device *a = nth(info, IA_DEVICE_CUDA, 0);
    if (a) { /* NVML's order: the A100 first */
        CHECK_STR(a->name, "IA Fake A100-SXM4-40GB");
        CHECK_STR(a->arch, "sm_80");
        CHECK_STR(a->pci_bus, "0000:86:00.0");
        CHECK_EQ_INT(a->memory_total, 42949672960ull);
        CHECK_EQ_INT(a->compute_units, 0);
        CHECK_STR(a->api_version, "");
        CHECK_STR(a->driver, "580.65.06");
    }
    const ia_hw_probe *p = ia_hw_info_probe(info, "nvml");
    CHECK(p && p->found && p->n_devices == 2);
    CHECK_CONTAINS(msg(info, "nvml"), "reported without libcuda");
    p = ia_hw_info_probe(info, "nvidia");
    CHECK(p && !p->found && p->n_devices == 0);
    ia_hw_info_free(info);
    clear_env();
}

TEST(cuda_alone_when_nvml_is_missing) {
    clear_env();
    setenv("IA_HW_LIB_CUDA", IA_FAKE_NVIDIA_LIB, 1);
    setenv("IA_HW_LIB_NVML", "/nonexistent/libnvidia-ml.so.1", 1);
    ia_hw_info *info = detect(NULL, true);
    CHECK_EQ_INT(count_kind(info, IA_DEVICE_CUDA), 2);
    const ia_hw_device *a = nth(info, IA_DEVICE_CUDA, 0);
    if (a) {
        CHECK_STR(a->name, "IA Fake H100 80GB HBM3");
        CHECK_EQ_INT(a->memory_total, 85031714816ull);
        CHECK_EQ_INT(a->memory_free, 0);
    }
    CHECK_CONTAINS(msg(info, "nvml"), "/nonexistent/libnvidia-ml.so.1");
    ia_hw_info_free(info);
    clear_env();
}

/* ---- the other libraries, broken ------------------------------------------------------ */

TEST(other_libraries_broken) {
    clear_env();
    static const struct {
        const char *env, *probe, *not_loaded, *no_symbol;
    } cases[] = {
        {"IA_HW_LIB_OPENCL", "opencl",
         "OpenCL loader not loaded: ", "OpenCL library has no clGetPlatformIDs"},
        {"IA_HW_LIB_VULKAN", "vulkan",
         "Vulkan loader not loaded: ", "Vulkan library has no vkGetInstanceProcAddr"},
        {"IA_HW_LIB_OPENVINO", "openvino", "OpenVINO runtime not installed as a system library: ",
         "OpenVINO library has no ov_get_openvino_version"},
        {"IA_HW_LIB_HIP", "rocm", "HIP not loaded: ", "HIP library has no hipGetDeviceCount"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv(cases[i].env, not_a_library(), 1);
        ia_hw_info *info = detect(NULL, true);
        CHECK_CONTAINS(msg(info, cases[i].probe), cases[i].not_loaded);
        CHECK_CONTAINS(msg(info, cases[i].probe), "not-a-library.so");
        fprintf(stderr, "  %s: %s\n", cases[i].probe, msg(info, cases[i].probe));
        if (strcmp(cases[i].probe, "opencl") == 0)
            CHECK_EQ_INT(count_kind(info, IA_DEVICE_OPENCL), 0);
        if (strcmp(cases[i].probe, "vulkan") == 0)
            CHECK_EQ_INT(count_kind(info, IA_DEVICE_VULKAN), 0);
        if (strcmp(cases[i].probe, "openvino") == 0)
            CHECK_EQ_INT(info->openvino_version[0], 0);
        ia_hw_info_free(info);

        setenv(cases[i].env, "libm.so.6", 1);
        info = detect(NULL, true);
        CHECK_CONTAINS(msg(info, cases[i].probe), cases[i].no_symbol);
        ia_hw_info_free(info);
        unsetenv(cases[i].env);
    }
    clear_env();
}

/* ---- this machine's own drivers ------------------------------------------------------- */

TEST(opencl_finds_pocl_cpu) {
    clear_env();
    void *h = dlopen("libOpenCL.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        SKIP("libOpenCL.so.1 is not installed (scripts/deps.sh installs ocl-icd-libopencl1)");
    dlclose(h);
    ia_hw_info *info = detect(NULL, true);
    fprintf(stderr, "  opencl: %s\n", msg(info, "opencl"));
    const ia_hw_device *cpu = NULL;
    for (int i = 0; i < count_kind(info, IA_DEVICE_OPENCL); i++) {
        const ia_hw_device *d = nth(info, IA_DEVICE_OPENCL, i);
        if (strcmp(d->type, "cpu") == 0)
            cpu = d;
    }
    CHECK_MSG(cpu != NULL, "no PoCL CPU device among OpenCL's: %s", msg(info, "opencl"));
    if (cpu) {
        fprintf(stderr, "  opencl:%d %s (%s), driver %s, OpenCL %s, %d units, %llu bytes\n",
                cpu->index, cpu->name, cpu->vendor, cpu->driver, cpu->api_version,
                cpu->compute_units, (unsigned long long)cpu->memory_total);
        CHECK(cpu->compute_units > 0);
        CHECK(cpu->memory_total > 0);
        CHECK(cpu->api_version[0] >= '1' && cpu->api_version[0] <= '9');
        CHECK(cpu->name[0] != '\0');
        CHECK_CONTAINS(msg(info, "opencl"), "Portable Computing Language");
    }
    const ia_hw_probe *p = ia_hw_info_probe(info, "opencl");
    CHECK(p && p->found && p->n_devices == count_kind(info, IA_DEVICE_OPENCL));
    ia_hw_info_free(info);
}

TEST(vulkan_finds_lavapipe_cpu) {
    clear_env();
    void *h = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        SKIP("libvulkan.so.1 is not installed (scripts/deps.sh installs libvulkan1)");
    dlclose(h);
    if (access("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json", R_OK) != 0 &&
        access("/usr/share/vulkan/icd.d/lvp_icd.aarch64.json", R_OK) != 0)
        SKIP("Mesa's lavapipe is not installed (mesa-vulkan-drivers)");
    ia_hw_info *info = detect(NULL, true);
    fprintf(stderr, "  vulkan: %s\n", msg(info, "vulkan"));
    const ia_hw_device *cpu = NULL;
    for (int i = 0; i < count_kind(info, IA_DEVICE_VULKAN); i++) {
        const ia_hw_device *d = nth(info, IA_DEVICE_VULKAN, i);
        if (strcmp(d->type, "cpu") == 0 && strstr(d->name, "llvmpipe"))
            cpu = d;
    }
    CHECK_MSG(cpu != NULL, "no llvmpipe CPU device: %s", msg(info, "vulkan"));
    if (cpu) {
        fprintf(stderr, "  vulkan:%d %s (%s), driver %s, Vulkan %s, %llu bytes\n", cpu->index,
                cpu->name, cpu->vendor, cpu->driver, cpu->api_version,
                (unsigned long long)cpu->memory_total);
        CHECK_STR(cpu->vendor, "Mesa");
        CHECK(strncmp(cpu->api_version, "1.", 2) == 0);
        CHECK(cpu->memory_total > 0);
    }
    ia_hw_info_free(info);
}

TEST(openvino_version_from_a_runtime) {
    clear_env();
    /* A system install first; else the copy inside the Python wheel, named
     * explicitly, since the probe does not look inside Python packages. */
    ia_hw_info *info = detect(NULL, true);
    fprintf(stderr, "  openvino: %s\n", msg(info, "openvino"));
    bool system_found = info->openvino_version[0] != '\0';
    ia_hw_info_free(info);
    if (system_found)
        return;
    static const char *const wheels[] = {
        "/root/.pyenv/versions/*/lib/python3*/site-packages/openvino/libs/libopenvino_c.so.*",
        "/usr/local/lib/python3*/*-packages/openvino/libs/libopenvino_c.so.*",
        "/usr/lib/python3/dist-packages/openvino/libs/libopenvino_c.so.*"};
    const char *wheel = first_match(wheels, 3);
    if (!wheel)
        SKIP("no OpenVINO runtime here: neither a system library nor the Python wheel's");
    setenv("IA_HW_LIB_OPENVINO", wheel, 1);
    info = detect(NULL, true);
    fprintf(stderr, "  openvino (wheel): %s\n", msg(info, "openvino"));
    const ia_hw_probe *p = ia_hw_info_probe(info, "openvino");
    CHECK(p && p->found && p->n_devices == 0);
    /* "2025.4.1-20426-...": a year-based version */
    CHECK_MSG(strncmp(info->openvino_version, "20", 2) == 0 && strchr(info->openvino_version, '.'),
              "version \"%s\"", info->openvino_version);
    ia_hw_info_free(info);
    clear_env();
}

TEST(live_probes_all_report) {
    clear_env();
    ia_hw_info *info = detect(NULL, true);
    static const char *const names[] = {"nvidia", "nvml",     "rocm", "opencl",
                                        "vulkan", "openvino", "apple"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const ia_hw_probe *p = ia_hw_info_probe(info, names[i]);
        CHECK_MSG(p != NULL, "no %s probe record", names[i]);
        if (p) {
            CHECK_MSG(p->message[0] != '\0', "%s has an empty message", names[i]);
            int n = 0;
            fprintf(stderr, "  %-8s %s %d: %s\n", p->name, p->found ? "found" : "none ",
                    p->n_devices, p->message);
            n = p->n_devices;
            CHECK(n >= 0 && (size_t)n <= info->n_devices);
        }
    }
    /* With libraries off on the live system the reason is different. */
    ia_hw_info *off = detect(NULL, false);
    CHECK_STR(msg(off, "nvidia"), "skipped: vendor libraries disabled");
    CHECK_STR(msg(off, "opencl"), "skipped: vendor libraries disabled");
    CHECK_EQ_INT(count_kind(off, IA_DEVICE_OPENCL) + count_kind(off, IA_DEVICE_VULKAN) +
                     count_kind(off, IA_DEVICE_CUDA),
                 0);
    ia_hw_info_free(off);
    ia_hw_info_free(info);
}
