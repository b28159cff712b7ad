/*
 * Tests for device choice (hw/device.c) on hand-built ia_hw_info records:
 * ranking, memory fit with headroom, what the engine implements, named
 * devices, and that every verdict carries a reason a user can act on.
 */
#include "test.h"

#include "ia/hw.h"

#define GiB (1ull << 30)

static ia_hw_info machine(ia_hw_device *devices, size_t n) {
    ia_hw_info info = {0};
    snprintf(info.cpu.model, sizeof info.cpu.model, "Test CPU");
    info.memory.total = 32 * GiB;
    info.memory.available = 20 * GiB;
    info.memory.usable = 16 * GiB;
    info.devices = devices;
    info.n_devices = n;
    return info;
}

static ia_hw_device gpu(ia_device_kind kind, int index, uint64_t total, uint64_t free_bytes) {
    ia_hw_device d = {
        .kind = kind, .index = index, .memory_total = total, .memory_free = free_bytes};
    snprintf(d.name, sizeof d.name, "%s device %d", ia_device_kind_name(kind), index);
    return d;
}

TEST(parse_device_names) {
    ia_device_kind k;
    int i;
    CHECK_OK(ia_device_parse("auto", &k, &i));
    CHECK_EQ_INT(k, IA_DEVICE_KIND_COUNT);
    CHECK_OK(ia_device_parse(NULL, &k, &i));
    CHECK_EQ_INT(k, IA_DEVICE_KIND_COUNT);
    CHECK_OK(ia_device_parse("cpu", &k, &i));
    CHECK_EQ_INT(k, IA_DEVICE_CPU);
    CHECK_OK(ia_device_parse("cuda:3", &k, &i));
    CHECK_EQ_INT(k, IA_DEVICE_CUDA);
    CHECK_EQ_INT(i, 3);
    CHECK_OK(ia_device_parse("opencl", &k, &i));
    CHECK_EQ_INT(i, -1);
    CHECK_ERR(ia_device_parse("cuda:", &k, &i), IA_EINVAL, "cuda:N");
    CHECK_ERR(ia_device_parse("cuda:x", &k, &i), IA_EINVAL, "device 'cuda:x'");
    CHECK_ERR(ia_device_parse("tpu", &k, &i), IA_EINVAL, "device 'tpu'");
    CHECK_ERR(ia_device_parse("cudax", &k, &i), IA_EINVAL, "device 'cudax'");
}

TEST(cpu_only_engine_picks_cpu_and_says_why_not_gpu) {
    ia_hw_device devs[] = {gpu(IA_DEVICE_CUDA, 0, 80 * GiB, 79 * GiB)};
    ia_hw_info hw = machine(devs, 1);
    ia_device_request req = {.bytes_needed = 200ull << 20, .implemented = "cpu"};
    ia_device_candidate list[8];
    size_t n, chosen;
    CHECK_OK(ia_device_choose(&hw, &req, list, 8, &n, &chosen));
    CHECK_EQ_INT(n, 2);
    CHECK(strcmp(list[chosen].id, "cpu") == 0);
    CHECK_EQ_INT(list[chosen].rank, 0);
    const ia_device_candidate *cuda = strcmp(list[0].id, "cuda:0") == 0 ? &list[0] : &list[1];
    CHECK(!cuda->usable);
    CHECK_EQ_INT(cuda->rank, -1);
    CHECK_MSG(strstr(cuda->reason, "no cuda backend"), "reason: %s", cuda->reason);

    /* Named: refused with the reason, not silently moved to the CPU. */
    req.want = "cuda:0";
    CHECK_ERR(ia_device_choose(&hw, &req, list, 8, &n, &chosen), IA_EUNSUPPORTED,
              "device 'cuda:0' cannot run this model: the engine has no cuda backend");
    req.want = "cuda:1";
    CHECK_ERR(ia_device_choose(&hw, &req, list, 8, &n, &chosen), IA_ENOTFOUND,
              "device 'cuda:1': no such device");
}

TEST(accelerators_rank_first_and_memory_decides) {
    ia_hw_device devs[] = {
        gpu(IA_DEVICE_OPENCL, 0, 8 * GiB, 0),
        gpu(IA_DEVICE_CUDA, 0, 24 * GiB, 2 * GiB),  /* nearly full */
        gpu(IA_DEVICE_CUDA, 1, 24 * GiB, 20 * GiB), /* room */
    };
    ia_hw_info hw = machine(devs, 3);
    ia_device_request req = {.bytes_needed = 4 * GiB, .implemented = "cpu,cuda,opencl"};
    ia_device_candidate list[8];
    size_t n, chosen;
    CHECK_OK(ia_device_choose(&hw, &req, list, 8, &n, &chosen));
    CHECK_EQ_INT(n, 4);
    CHECK(strcmp(list[chosen].id, "cuda:1") == 0);
    /* order: cuda:1, opencl:0 (total memory when free is unknown), cpu; cuda:0 unusable */
    CHECK(strcmp(list[0].id, "cuda:1") == 0 && list[0].rank == 0);
    CHECK(strcmp(list[1].id, "opencl:0") == 0 && list[1].rank == 1);
    CHECK(strcmp(list[2].id, "cpu") == 0 && list[2].rank == 2);
    CHECK(strcmp(list[3].id, "cuda:0") == 0 && list[3].rank == -1);
    CHECK_MSG(strstr(list[3].reason, "needs 4.0 GiB, 1.8 GiB free after 10% headroom"),
              "reason: %s", list[3].reason);
    /* "cuda" takes the best CUDA device. */
    req.want = "cuda";
    CHECK_OK(ia_device_choose(&hw, &req, list, 8, &n, &chosen));
    CHECK(strcmp(list[chosen].id, "cuda:1") == 0);
    /* Too big for the only GPU: auto falls back to the CPU. */
    ia_hw_device small[] = {gpu(IA_DEVICE_CUDA, 0, 8 * GiB, 4 * GiB)};
    ia_hw_info hw2 = machine(small, 1);
    req.want = "auto";
    req.bytes_needed = 6 * GiB;
    CHECK_OK(ia_device_choose(&hw2, &req, list, 8, &n, &chosen));
    CHECK(strcmp(list[chosen].id, "cpu") == 0);
    CHECK_MSG(strstr(list[chosen].reason, "fits: needs 6.0 GiB of 14.4 GiB free"), "reason: %s",
              list[chosen].reason);
}

TEST(nothing_fits) {
    ia_hw_info hw = machine(NULL, 0);
    ia_device_request req = {.bytes_needed = 40 * GiB, .implemented = "cpu"};
    ia_device_candidate list[4];
    size_t n, chosen;
    CHECK_ERR(ia_device_choose(&hw, &req, list, 4, &n, &chosen), IA_EUNSUPPORTED,
              "no device can run this model: cpu: needs 40.0 GiB, 14.4 GiB free");
    req.bytes_needed = 1 * GiB;
    req.implemented = "";
    CHECK_ERR(ia_device_choose(&hw, &req, list, 4, &n, &chosen), IA_EUNSUPPORTED,
              "the engine has no cpu backend");
    /* A generous headroom is honoured. */
    req.implemented = "cpu";
    req.bytes_needed = 9 * GiB;
    req.headroom = 0.5;
    CHECK_ERR(ia_device_choose(&hw, &req, list, 4, &n, &chosen), IA_EUNSUPPORTED,
              "needs 9.0 GiB, 8.0 GiB free after 50% headroom");
}

TEST(cap_smaller_than_devices) {
    ia_hw_device devs[] = {gpu(IA_DEVICE_CUDA, 0, 8 * GiB, 8 * GiB),
                           gpu(IA_DEVICE_CUDA, 1, 8 * GiB, 8 * GiB)};
    ia_hw_info hw = machine(devs, 2);
    ia_device_request req = {.bytes_needed = GiB, .implemented = "cuda,cpu"};
    ia_device_candidate list[1];
    size_t n, chosen;
    CHECK_OK(ia_device_choose(&hw, &req, list, 1, &n, &chosen));
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(chosen, 0);
    CHECK(strcmp(list[0].id, "cuda:0") == 0);
}
