/*
 * libFuzzer target for the model server's request-body parsing (the JSON of
 * embedding and generation requests in the OpenAI, TEI and Ollama dialects),
 * the part of the server that reads network input before any model runs.
 * The first byte picks the route (dialect and kind), the rest is the body.
 * Whatever parses must be coherent: a 200 has its inputs in range (n >= 1 and
 * at most the input limit, every text non-empty with its length, token lists
 * non-empty, stop strings non-empty, sampling values in their ranges); any
 * other status is a 4xx with a reason.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ia/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUTS 64

static void check_embed(ia_api_dialect d, const char *body, size_t len) {
    ia_embed_request q;
    char why[512], param[64];
    int st =
        ia_server_parse_embed(d, body, len, MAX_INPUTS, &q, why, sizeof why, param, sizeof param);
    if (st != 200) {
        assert(st >= 400 && st < 600 && why[0]);
        return;
    }
    assert(q.n >= 1 && q.n <= MAX_INPUTS);
    for (size_t i = 0; i < q.n; i++) {
        if (q.ids) {
            assert(q.ids[i] && q.n_ids[i] >= 1);
            for (size_t t = 0; t < q.n_ids[i]; t++)
                assert(q.ids[i][t] >= 0);
        } else {
            assert(q.texts[i] && q.lens[i] >= 1 && strlen(q.texts[i]) == q.lens[i]);
        }
    }
    ia_embed_request_free(&q);
}

static void check_generate(ia_api_dialect d, bool chat, const char *body, size_t len) {
    ia_gen_request q;
    char why[512], param[64];
    int st = ia_server_parse_generate(d, chat, body, len, &q, why, sizeof why, param, sizeof param);
    if (st != 200) {
        assert(st >= 400 && st < 600 && why[0]);
        return;
    }
    if (chat) {
        assert(q.n_messages >= 1);
        for (size_t i = 0; i < q.n_messages; i++)
            assert(q.messages[i].role && q.messages[i].content);
    } else {
        assert(q.prompt);
    }
    assert(q.temperature >= 0 && q.top_p > 0 && q.top_p <= 1 && q.top_k >= 0);
    assert(q.max_tokens == -1 || q.max_tokens >= 0);
    for (size_t i = 0; i < q.n_stop; i++)
        assert(q.stop[i] && q.stop[i][0]);
    ia_gen_request_free(&q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 65536)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 7) {
    case 0:
        check_embed(IA_API_OPENAI, body, len);
        break;
    case 1:
        check_embed(IA_API_TEI, body, len);
        break;
    case 2:
        check_embed(IA_API_OLLAMA, body, len);
        break;
    case 3:
        check_generate(IA_API_OPENAI, false, body, len);
        break;
    case 4:
        check_generate(IA_API_OPENAI, true, body, len);
        break;
    case 5:
        check_generate(IA_API_OLLAMA, false, body, len);
        break;
    default:
        check_generate(IA_API_OLLAMA, true, body, len);
        break;
    }
    return 0;
}
