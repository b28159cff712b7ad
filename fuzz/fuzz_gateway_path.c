/*
 * libFuzzer target for the gateway's request parsing (URL path, query
 * parameters, Accept header), the part of the gateway that reads network
 * input before any block is touched. The input is up to eight lines: URL,
 * Accept, format, dag-scope, entity-bytes, car-version, car-order, car-dups
 * (a missing line is an absent input). Whatever parses must be coherent: a
 * 200 names a format and scope in range, a path borrowed from the URL, a
 * range with FROM <= TO when both count from the same end, and a CID that
 * formats and parses back to itself; any other status comes with a reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ia/ipfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 16384)
        return 0;
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    const char *field[8] = {0};
    char *p = buf;
    for (int i = 0; i < 8 && p; i++) {
        field[i] = p;
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = 0;
        p = nl ? nl + 1 : NULL;
    }
    const char *url = field[0] ? field[0] : "";
    ia_gw_inputs in = {field[1], field[2], field[3], field[4], field[5], field[6], field[7]};
    ia_gw_request req;
    char why[512];
    int status = ia_gateway_parse_request(url, &in, &req, why, sizeof why);
    if (status == 200) {
        if (req.format > IA_GW_FORMAT_CAR || req.scope > IA_GW_SCOPE_BLOCK)
            abort();
        if (!req.path || req.path < url || req.path > url + strlen(url))
            abort();
        if (req.has_range && !req.range_to_end &&
            ((req.range_from >= 0 && req.range_to >= 0) ||
             (req.range_from < 0 && req.range_to < 0)) &&
            req.range_to < req.range_from)
            abort();
        char text[IA_CID_MAX_STRING];
        ia_cid back;
        if (ia_cid_format(&req.cid, IA_BASE32, text, sizeof text) == IA_OK &&
            (ia_cid_parse(text, &back) != IA_OK || !ia_cid_equal(&back, &req.cid)))
            abort();
    } else if (!(status == 400 || status == 404 || status == 406 || status == 501) || !why[0]) {
        abort();
    }
    free(buf);
    return 0;
}
