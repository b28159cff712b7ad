/*
 * libFuzzer target for the S3 client's XML reading: the bounded scanner in
 * src/backends/s3_xml.c and the documents built on it, the ListObjectsV2
 * page parser, the <Error> reader and the path lookups used for
 * InitiateMultipartUpload, CompleteMultipartUpload and
 * ListMultipartUploads answers. Every input goes through all of them (a
 * server chooses what it sends, not which parser reads it). Whatever
 * parses must be coherent: every listed entry has a key, a truncated page
 * has a continuation token, messages fit their buffers, and a walk reports
 * NUL-terminated texts no longer than the limit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/backends/s3_xml.h"
#include "ia/s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ia_status check_node(void *ctx, const char *path, const char *text, size_t len) {
    size_t *nodes = ctx;
    if (!*path || strlen(path) > IA_S3_XML_MAX_PATH || len > IA_S3_XML_MAX_TEXT || text[len] != 0)
        abort();
    (*nodes)++;
    return IA_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1 << 20))
        return 0;
    const char *xml = (const char *)data;
    size_t nodes = 0;
    (void)ia_s3_xml_walk(xml, size, check_node, &nodes);

    ia_s3_list_page page;
    if (ia_s3_list_page_parse(xml, size, &page) == IA_OK) {
        for (size_t i = 0; i < page.n; i++)
            if (!page.entries[i].key ||
                page.entries[i].info.etag[sizeof page.entries[i].info.etag - 1])
                abort();
        for (size_t i = 0; i < page.n_prefixes; i++)
            if (!page.prefixes[i])
                abort();
        if (page.truncated && (!page.next_token || !*page.next_token))
            abort();
        ia_s3_list_page_free(&page);
    }

    char code[16], msg[32];
    if (ia_s3_xml_error(xml, size, code, sizeof code, msg, sizeof msg) == IA_OK &&
        (strlen(code) >= sizeof code || strlen(msg) >= sizeof msg))
        abort();

    char *text = NULL;
    if (ia_s3_xml_find(xml, size, "InitiateMultipartUploadResult/UploadId", &text) == IA_OK &&
        !text)
        abort();
    free(text);
    size_t count = 0;
    (void)ia_s3_xml_count(xml, size, "ListMultipartUploadsResult/Upload", &count);
    if (count > nodes)
        abort();
    return 0;
}
