/*
 * The fake provider (see fake_provider.h): libmicrohttpd with a thread per
 * connection, so that a slow or endless answer holds only its own
 * connection. A request's body is gathered over MHD's upload calls, checked
 * against the wire format of its route, and answered either from a buffer or
 * through a content reader that sends prepared chunks with a pause between
 * them (streams), stops early (truncation, reset) or never ends.
 */
#define _GNU_SOURCE
#include "fake_provider.h"

#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FAULTS 64
#define MAX_LOG 256

typedef struct fault {
    fake_fault_kind kind;
    long arg;
    char path[64]; /* only requests to this path; "" any */
} fault;

struct fake_provider {
    struct MHD_Daemon *d;
    char url[64];
    pthread_mutex_t lock; /* guards everything below */
    char keys[256];
    fault faults[MAX_FAULTS];
    int n_faults;
    int requests;
    int active;
    char key_log[MAX_LOG][96];
    char last_body[65536];
    char last_path[512];
};

/* ---- chunked answers ------------------------------------------------------------------- */

typedef struct chunks {
    fake_provider *f;
    char **items;
    size_t n, cap;
    size_t idx, off;
    long gap_ms;
    long fail_after; /* bytes; -1: never */
    long sent;
    char *endless; /* repeated forever once items run out */
} chunks;

static void chunks_add(chunks *c, char *s) {
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->items = realloc(c->items, c->cap * sizeof *c->items);
    }
    c->items[c->n++] = s;
}

static void chunks_addf(chunks *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void chunks_addf(chunks *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = strdup("");
    va_end(ap);
    chunks_add(c, s);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static ssize_t chunks_read(void *cls, uint64_t pos, char *buf, size_t max) {
    chunks *c = cls;
    (void)pos;
    if (c->fail_after >= 0 && c->sent >= c->fail_after)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    const char *cur = NULL;
    if (c->idx < c->n) {
        if (c->off == 0 && c->idx > 0 && c->gap_ms > 0)
            sleep_ms(c->gap_ms);
        cur = c->items[c->idx];
    } else if (c->endless) {
        if (c->off == 0)
            sleep_ms(10);
        cur = c->endless;
    } else {
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t left = strlen(cur) - c->off;
    size_t k = left < max ? left : max;
    if (c->fail_after >= 0 && (long)k > c->fail_after - c->sent)
        k = (size_t)(c->fail_after - c->sent);
    memcpy(buf, cur + c->off, k);
    c->off += k;
    c->sent += (long)k;
    if (c->off == strlen(cur)) {
        c->off = 0;
        if (c->idx < c->n)
            c->idx++;
    }
    if (k == 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return (ssize_t)k;
}

static void chunks_free(void *cls) {
    chunks *c = cls;
    pthread_mutex_lock(&c->f->lock);
    c->f->active--;
    pthread_mutex_unlock(&c->f->lock);
    for (size_t i = 0; i < c->n; i++)
        free(c->items[i]);
    free(c->items);
    free(c->endless);
    free(c);
}

/* ---- routes ------------------------------------------------------------------------------ */

typedef enum route {
    R_NONE,
    R_OAI_CHAT,
    R_OAI_COMPLETE,
    R_OAI_EMBED,
    R_OAI_RERANK,
    R_ANTHROPIC,
    R_GEMINI_GEN,
    R_GEMINI_STREAM,
    R_GEMINI_EMBED,
    R_OLLAMA_CHAT,
    R_OLLAMA_GENERATE,
    R_OLLAMA_EMBED,
    R_TGI_GENERATE,
    R_TGI_STREAM,
    R_TEI_EMBED,
    R_TEI_RERANK,
    R_OPEA,
    R_KSERVE,
    R_PROBE,
} route;

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static route route_of(const char *method, const char *url) {
    if (strcmp(method, "GET") == 0) {
        static const char *const probes[] = {
            "/v1/models", "/openai/v1/models", "/v1beta/models",   "/api/tags",
            "/info",      "/v2/health/ready",  "/v1/health_check", "/v3/models"};
        for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++)
            if (strcmp(url, probes[i]) == 0)
                return R_PROBE;
        return R_NONE;
    }
    if (strncmp(url, "/v2/models/", 11) == 0 && ends_with(url, "/infer"))
        return R_KSERVE;
    bool oai = strncmp(url, "/v1/", 4) == 0 || strncmp(url, "/openai/v1/", 11) == 0 ||
               strncmp(url, "/v3/", 4) == 0;
    if (oai && ends_with(url, "/chat/completions"))
        return R_OAI_CHAT;
    if (oai && ends_with(url, "/completions"))
        return R_OAI_COMPLETE;
    if (oai && ends_with(url, "/embeddings"))
        return R_OAI_EMBED;
    if (oai && ends_with(url, "/rerank"))
        return R_OAI_RERANK;
    if (strcmp(url, "/v1/messages") == 0)
        return R_ANTHROPIC;
    if (strcmp(url, "/v1/chatqna") == 0)
        return R_OPEA;
    if (strncmp(url, "/v1beta/models/", 15) == 0) {
        if (ends_with(url, ":generateContent"))
            return R_GEMINI_GEN;
        if (ends_with(url, ":streamGenerateContent"))
            return R_GEMINI_STREAM;
        if (ends_with(url, ":batchEmbedContents"))
            return R_GEMINI_EMBED;
    }
    static const struct {
        const char *path;
        route r;
    } fixed[] = {{"/api/chat", R_OLLAMA_CHAT},       {"/api/generate", R_OLLAMA_GENERATE},
                 {"/api/embed", R_OLLAMA_EMBED},     {"/generate", R_TGI_GENERATE},
                 {"/generate_stream", R_TGI_STREAM}, {"/embed", R_TEI_EMBED},
                 {"/rerank", R_TEI_RERANK}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strcmp(url, fixed[i].path) == 0)
            return fixed[i].r;
    return R_NONE;
}

/* The request's key from whichever header its provider uses. */
static void request_key(struct MHD_Connection *conn, char *buf, size_t n) {
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    const char *x = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-api-key");
    const char *g = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-goog-api-key");
    buf[0] = 0;
    if (auth && strncmp(auth, "Bearer ", 7) == 0)
        snprintf(buf, n, "%s", auth + 7);
    else if (x)
        snprintf(buf, n, "%s", x);
    else if (g)
        snprintf(buf, n, "%s", g);
}

static bool key_allowed(const char *keys, const char *key) {
    if (!*keys)
        return true;
    if (!*key)
        return false;
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", keys);
    char *save = NULL;
    for (char *k = strtok_r(tmp, ",", &save); k; k = strtok_r(NULL, ",", &save))
        if (strcmp(k, key) == 0)
            return true;
    return false;
}

/* ---- request checks: what each wire format requires -------------------------------------------
 */

static const char *user_text(route r, json_t *b) {
    switch (r) {
    case R_OAI_CHAT:
    case R_ANTHROPIC:
    case R_OLLAMA_CHAT: {
        json_t *msgs = json_object_get(b, "messages");
        json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
        return json_string_value(json_object_get(last, "content"));
    }
    case R_OAI_COMPLETE:
        return json_string_value(json_object_get(b, "prompt"));
    case R_OLLAMA_GENERATE:
        return json_string_value(json_object_get(b, "prompt"));
    case R_TGI_GENERATE:
    case R_TGI_STREAM:
        return json_string_value(json_object_get(b, "inputs"));
    case R_OPEA:
        return json_string_value(json_object_get(b, "messages"));
    case R_GEMINI_GEN:
    case R_GEMINI_STREAM: {
        json_t *c0 = json_array_get(json_object_get(b, "contents"), 0);
        json_t *p0 = json_array_get(json_object_get(c0, "parts"), 0);
        return json_string_value(json_object_get(p0, "text"));
    }
    default:
        return NULL;
    }
}

static bool all_strings(json_t *a) {
    if (!json_is_array(a) || json_array_size(a) == 0)
        return false;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!json_is_string(json_array_get(a, i)))
            return false;
    return true;
}

/* NULL when the request has what its format requires, else what is wrong. */
static const char *check_request(route r, struct MHD_Connection *conn, json_t *b) {
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (r != R_PROBE && (!ct || strncmp(ct, "application/json", 16) != 0))
        return "Content-Type must be application/json";
    if (r != R_PROBE && !json_is_object(b))
        return "the body must be a JSON object";
    switch (r) {
    case R_OAI_CHAT: {
        json_t *m = json_object_get(b, "messages");
        json_t *m0 = json_array_get(m, 0);
        if (!json_is_string(json_object_get(b, "model")))
            return "model is required";
        if (!json_is_array(m) || !json_is_string(json_object_get(m0, "role")) ||
            !json_is_string(json_object_get(m0, "content")))
            return "messages must be a list of {role, content}";
        if (json_object_get(b, "max_tokens") && !json_is_integer(json_object_get(b, "max_tokens")))
            return "max_tokens must be an integer";
        return NULL;
    }
    case R_OAI_COMPLETE:
        return json_is_string(json_object_get(b, "model")) &&
                       json_is_string(json_object_get(b, "prompt"))
                   ? NULL
                   : "model and prompt are required";
    case R_OAI_EMBED:
        return json_is_string(json_object_get(b, "model")) &&
                       all_strings(json_object_get(b, "input"))
                   ? NULL
                   : "model and input (a list of strings) are required";
    case R_OAI_RERANK:
        return json_is_string(json_object_get(b, "query")) &&
                       all_strings(json_object_get(b, "documents"))
                   ? NULL
                   : "query and documents are required";
    case R_KSERVE: {
        /* KServe v2: one BYTES tensor, its shape the number of strings */
        json_t *ins = json_object_get(b, "inputs"), *in0 = json_array_get(ins, 0);
        json_t *shape = json_object_get(in0, "shape"), *data = json_object_get(in0, "data");
        if (json_array_size(ins) != 1 || !json_is_string(json_object_get(in0, "name")))
            return "inputs must hold one tensor with a name";
        if (strcmp(json_string_value(json_object_get(in0, "datatype")) ?: "", "BYTES") != 0)
            return "the input's datatype must be BYTES";
        if (json_array_size(shape) != 1 ||
            json_integer_value(json_array_get(shape, 0)) != (json_int_t)json_array_size(data) ||
            !all_strings(data))
            return "the input's shape must be [number of strings] and data those strings";
        return NULL;
    }
    case R_ANTHROPIC: {
        const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "anthropic-version");
        if (!v || strcmp(v, "2023-06-01") != 0)
            return "anthropic-version header is required";
        if (!MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-api-key") ||
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"))
            return "the key goes in x-api-key";
        if (!json_is_integer(json_object_get(b, "max_tokens")))
            return "max_tokens: Field required";
        if (!json_is_string(json_object_get(b, "model")))
            return "model: Field required";
        json_t *msgs = json_object_get(b, "messages"), *m0 = json_array_get(msgs, 0);
        if (!json_is_string(json_object_get(m0, "role")) ||
            !json_is_string(json_object_get(m0, "content")))
            return "messages: Field required";
        /* the Messages API has no system turns: the system prompt is a field */
        for (size_t i = 0; i < json_array_size(msgs); i++) {
            const char *role = json_string_value(json_object_get(json_array_get(msgs, i), "role"));
            if (!role || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
                return "messages: roles must be user or assistant";
        }
        json_t *sys = json_object_get(b, "system");
        if (sys && !json_is_string(sys))
            return "system must be a string";
        return NULL;
    }
    case R_GEMINI_GEN:
    case R_GEMINI_STREAM: {
        const char *alt = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "alt");
        if (r == R_GEMINI_STREAM && (!alt || strcmp(alt, "sse") != 0))
            return "streamGenerateContent needs alt=sse for SSE";
        if (!MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-goog-api-key"))
            return "the key goes in x-goog-api-key";
        return user_text(r, b) ? NULL : "contents[0].parts[0].text is required";
    }
    case R_GEMINI_EMBED: {
        json_t *reqs = json_object_get(b, "requests");
        if (!MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-goog-api-key"))
            return "the key goes in x-goog-api-key";
        if (!json_is_array(reqs) || json_array_size(reqs) == 0)
            return "requests is required";
        for (size_t i = 0; i < json_array_size(reqs); i++) {
            json_t *q = json_array_get(reqs, i);
            json_t *p0 = json_array_get(json_object_get(json_object_get(q, "content"), "parts"), 0);
            const char *model = json_string_value(json_object_get(q, "model"));
            if (!model || strncmp(model, "models/", 7) != 0 ||
                !json_is_string(json_object_get(p0, "text")))
                return "each request needs model \"models/...\" and content.parts[0].text";
        }
        return NULL;
    }
    case R_OLLAMA_CHAT:
    case R_OLLAMA_GENERATE:
        if (!json_is_string(json_object_get(b, "model")))
            return "model is required";
        return user_text(r, b) ? NULL : "messages or prompt is required";
    case R_OLLAMA_EMBED:
        return json_is_string(json_object_get(b, "model")) &&
                       all_strings(json_object_get(b, "input"))
                   ? NULL
                   : "model and input are required";
    case R_TGI_GENERATE:
    case R_TGI_STREAM:
        return user_text(r, b) && json_is_object(json_object_get(b, "parameters"))
                   ? NULL
                   : "inputs and parameters are required";
    case R_TEI_EMBED:
        return all_strings(json_object_get(b, "inputs")) ? NULL : "inputs is required";
    case R_TEI_RERANK:
        return json_is_string(json_object_get(b, "query")) &&
                       all_strings(json_object_get(b, "texts"))
                   ? NULL
                   : "query and texts are required";
    case R_OPEA:
        return user_text(r, b) ? NULL : "messages is required";
    default:
        return NULL;
    }
}

/* ---- answers -------------------------------------------------------------------------------- */

static json_t *embedding_of(const char *t) {
    return json_pack("[f,f,f,f]", (double)strlen(t), (double)(unsigned char)t[0], 0.5, 1.0);
}

static double rerank_score(const char *q, const char *t) {
    double d = (double)strlen(t) - (double)strlen(q);
    return 1.0 / (1.0 + (d < 0 ? -d : d));
}

static char *dump(json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

/* The whole (non-streamed) answer. */
static char *full_answer(route r, json_t *b, const char *reply) {
    switch (r) {
    case R_OAI_CHAT:
    case R_OPEA:
        return dump(json_pack("{s:s,s:s,s:[{s:i,s:{s:s,s:s},s:s}],s:{s:i,s:i,s:i}}", "id",
                              "chatcmpl-1", "object", "chat.completion", "choices", "index", 0,
                              "message", "role", "assistant", "content", reply, "finish_reason",
                              "stop", "usage", "prompt_tokens", 7, "completion_tokens", 3,
                              "total_tokens", 10));
    case R_OAI_COMPLETE:
        return dump(json_pack("{s:[{s:i,s:s,s:s}],s:{s:i,s:i}}", "choices", "index", 0, "text",
                              reply, "finish_reason", "length", "usage", "prompt_tokens", 5,
                              "completion_tokens", 3));
    case R_OAI_EMBED: {
        json_t *data = json_array();
        json_t *in = json_object_get(b, "input");
        for (size_t i = 0; i < json_array_size(in); i++)
            json_array_append_new(
                data,
                json_pack("{s:s,s:i,s:o}", "object", "embedding", "index", (int)i, "embedding",
                          embedding_of(json_string_value(json_array_get(in, i)))));
        return dump(json_pack("{s:s,s:o,s:{s:i,s:i}}", "object", "list", "data", data, "usage",
                              "prompt_tokens", 4, "total_tokens", 4));
    }
    case R_OAI_RERANK:
    case R_TEI_RERANK: {
        bool tei = r == R_TEI_RERANK;
        json_t *docs = json_object_get(b, tei ? "texts" : "documents");
        const char *q = json_string_value(json_object_get(b, "query"));
        json_t *res = json_array();
        for (size_t i = 0; i < json_array_size(docs); i++)
            json_array_append_new(
                res, json_pack("{s:i,s:f}", "index", (int)i, tei ? "score" : "relevance_score",
                               rerank_score(q, json_string_value(json_array_get(docs, i)))));
        return tei ? dump(res) : dump(json_pack("{s:s,s:o}", "id", "rerank-1", "results", res));
    }
    case R_ANTHROPIC:
        return dump(json_pack("{s:s,s:s,s:s,s:[{s:s,s:s}],s:s,s:{s:i,s:i}}", "id", "msg_1", "type",
                              "message", "role", "assistant", "content", "type", "text", "text",
                              reply, "stop_reason", "end_turn", "usage", "input_tokens", 9,
                              "output_tokens", 3));
    case R_GEMINI_GEN:
        return dump(json_pack("{s:[{s:{s:[{s:s}],s:s},s:s}],s:{s:i,s:i}}", "candidates", "content",
                              "parts", "text", reply, "role", "model", "finishReason", "STOP",
                              "usageMetadata", "promptTokenCount", 6, "candidatesTokenCount", 3));
    case R_GEMINI_EMBED: {
        json_t *embs = json_array();
        json_t *reqs = json_object_get(b, "requests");
        for (size_t i = 0; i < json_array_size(reqs); i++) {
            json_t *p0 = json_array_get(
                json_object_get(json_object_get(json_array_get(reqs, i), "content"), "parts"), 0);
            json_array_append_new(
                embs, json_pack("{s:o}", "values",
                                embedding_of(json_string_value(json_object_get(p0, "text")))));
        }
        return dump(json_pack("{s:o}", "embeddings", embs));
    }
    case R_OLLAMA_CHAT:
        return dump(json_pack("{s:s,s:{s:s,s:s},s:b,s:s,s:i,s:i}", "model", "m", "message", "role",
                              "assistant", "content", reply, "done", 1, "done_reason", "stop",
                              "prompt_eval_count", 8, "eval_count", 3));
    case R_OLLAMA_GENERATE:
        return dump(json_pack("{s:s,s:s,s:b,s:s,s:i,s:i}", "model", "m", "response", reply, "done",
                              1, "done_reason", "stop", "prompt_eval_count", 8, "eval_count", 3));
    case R_OLLAMA_EMBED:
    case R_TEI_EMBED: {
        json_t *in = json_object_get(b, r == R_TEI_EMBED ? "inputs" : "input");
        json_t *rows = json_array();
        for (size_t i = 0; i < json_array_size(in); i++)
            json_array_append_new(rows, embedding_of(json_string_value(json_array_get(in, i))));
        if (r == R_TEI_EMBED)
            return dump(rows);
        return dump(
            json_pack("{s:s,s:o,s:i}", "model", "m", "embeddings", rows, "prompt_eval_count", 4));
    }
    case R_TGI_GENERATE:
        return dump(json_pack("{s:s,s:{s:s,s:i}}", "generated_text", reply, "details",
                              "finish_reason", "length", "generated_tokens", 3));
    case R_PROBE:
        return strdup("{\"object\":\"list\",\"data\":[]}");
    default:
        return strdup("{}");
    }
}

/* A stream of the words of reply in the route's framing; *n_end is how many
 * trailing chunks form the end marker. */
static void stream_answer(route r, const char *reply, chunks *c, size_t *n_end, bool chat) {
    char *copy = strdup(reply);
    char *save = NULL;
    int words = 0;
    if (r == R_ANTHROPIC) {
        chunks_addf(c, "event: message_start\ndata: "
                       "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{"
                       "\"input_tokens\":9,\"output_tokens\":1}}}\n\n");
        chunks_addf(c, "event: content_block_start\ndata: "
                       "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
                       "\"text\",\"text\":\"\"}}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n");
    }
    for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save), words++) {
        char piece[256];
        snprintf(piece, sizeof piece, "%s%s", words ? " " : "", w);
        json_t *js = json_string(piece);
        char *q = json_dumps(js, JSON_ENCODE_ANY);
        json_decref(js);
        switch (r) {
        case R_OAI_CHAT:
        case R_OPEA:
        case R_OAI_COMPLETE:
            if (chat)
                chunks_addf(c,
                            "data: "
                            "{\"choices\":[{\"index\":0,\"delta\":{\"content\":%s},\"finish_"
                            "reason\":null}]}\n\n",
                            q);
            else
                chunks_addf(
                    c, "data: {\"choices\":[{\"index\":0,\"text\":%s,\"finish_reason\":null}]}\n\n",
                    q);
            break;
        case R_ANTHROPIC:
            chunks_addf(c,
                        "event: content_block_delta\ndata: "
                        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_"
                        "delta\",\"text\":%s}}\n\n",
                        q);
            break;
        case R_GEMINI_STREAM:
            chunks_addf(c,
                        "data: "
                        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":%s}],\"role\":"
                        "\"model\"}}]}\r\n\r\n",
                        q);
            break;
        case R_OLLAMA_CHAT:
            chunks_addf(c,
                        "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":%s},"
                        "\"done\":false}\n",
                        q);
            break;
        case R_OLLAMA_GENERATE:
            chunks_addf(c, "{\"model\":\"m\",\"response\":%s,\"done\":false}\n", q);
            break;
        case R_TGI_STREAM:
            chunks_addf(c,
                        "data:{\"token\":{\"id\":%d,\"text\":%s,\"logprob\":-0.5,\"special\":false}"
                        ",\"generated_text\":null,\"details\":null}\n\n",
                        words, q);
            break;
        default:
            break;
        }
        free(q);
    }
    free(copy);
    json_t *js = json_string(reply);
    char *full = json_dumps(js, JSON_ENCODE_ANY);
    json_decref(js);
    switch (r) {
    case R_OAI_CHAT:
    case R_OPEA:
    case R_OAI_COMPLETE:
        chunks_addf(c,
                    "data: "
                    "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
                    "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":%d}}\n\n",
                    words);
        chunks_addf(c, "data: [DONE]\n\n");
        *n_end = 1;
        break;
    case R_ANTHROPIC:
        chunks_addf(
            c,
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n");
        chunks_addf(c,
                    "event: message_delta\ndata: "
                    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
                    "\"usage\":{\"output_tokens\":%d}}\n\n",
                    words);
        chunks_addf(c, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        *n_end = 1;
        break;
    case R_GEMINI_STREAM:
        chunks_addf(c,
                    "data: "
                    "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\"}],\"role\":\"model\"}"
                    ",\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":6,"
                    "\"candidatesTokenCount\":%d}}\r\n\r\n",
                    words);
        *n_end = 1;
        break;
    case R_OLLAMA_CHAT:
        chunks_addf(
            c,
            "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
            "\"done_reason\":\"stop\",\"prompt_eval_count\":8,\"eval_count\":%d}\n",
            words);
        *n_end = 1;
        break;
    case R_OLLAMA_GENERATE:
        chunks_addf(c,
                    "{\"model\":\"m\",\"response\":\"\",\"done\":true,\"done_reason\":\"stop\","
                    "\"prompt_eval_count\":8,\"eval_count\":%d}\n",
                    words);
        *n_end = 1;
        break;
    case R_TGI_STREAM:
        chunks_addf(
            c,
            "data:{\"token\":{\"id\":99,\"text\":\"\",\"logprob\":0,\"special\":true},\"generated_"
            "text\":%s,\"details\":{\"finish_reason\":\"eos_token\",\"generated_tokens\":%d}}\n\n",
            full, words);
        *n_end = 1;
        break;
    default:
        *n_end = 0;
        break;
    }
    free(full);
}

static char *stream_error_chunk(route r) {
    switch (r) {
    case R_ANTHROPIC:
        return strdup("event: error\ndata: "
                      "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
                      "\"Overloaded\"}}\n\n");
    case R_OLLAMA_CHAT:
    case R_OLLAMA_GENERATE:
        return strdup("{\"error\":\"model runner crashed\"}\n");
    case R_GEMINI_STREAM:
        return strdup("data: {\"error\":{\"code\":503,\"message\":\"The model is "
                      "overloaded.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n");
    case R_TGI_STREAM:
        return strdup("data:{\"error\":\"Model is overloaded\",\"error_type\":\"overloaded\"}\n\n");
    default:
        return strdup("data: {\"error\":{\"message\":\"The server had an error while processing "
                      "your request.\",\"type\":\"server_error\"}}\n\n");
    }
}

static bool is_stream(route r, json_t *b) {
    if (r == R_GEMINI_STREAM || r == R_TGI_STREAM)
        return true;
    if (r == R_OLLAMA_CHAT || r == R_OLLAMA_GENERATE)
        return !json_is_false(json_object_get(b, "stream")); /* Ollama streams by default */
    return json_is_true(json_object_get(b, "stream"));
}

static const char *content_type(route r, bool stream) {
    if (!stream)
        return "application/json";
    return r == R_OLLAMA_CHAT || r == R_OLLAMA_GENERATE ? "application/x-ndjson"
                                                        : "text/event-stream";
}

/* The provider's error body for a status. */
/* KServe v2 inference (OVMS): POST /v2/models/{m}/infer. A model whose name
 * contains "embed" answers FP32 embeddings [N, 4] (as embedding_of) in the
 * output "embeddings"; any other answers BYTES "echo: " + each input in the
 * output "text_output". The input tensor must be named "query" for a model
 * whose name contains "query", else "text"; requested outputs must exist. */
static char *error_body(route r, int status, const char *msg);

static char *kserve_answer(const char *url, json_t *b, int *status) {
    char model[128];
    const char *m = url + 11, *end = strstr(m, "/infer");
    snprintf(model, sizeof model, "%.*s", (int)(end - m), m);
    bool embed = strstr(model, "embed") != NULL;
    const char *want_in = strstr(model, "query") ? "query" : "text";
    const char *out_name = embed ? "embeddings" : "text_output";
    json_t *in0 = json_array_get(json_object_get(b, "inputs"), 0);
    json_t *data = json_object_get(in0, "data");
    char msg[256];
    if (strcmp(json_string_value(json_object_get(in0, "name")), want_in) != 0) {
        snprintf(msg, sizeof msg, "Invalid input name: %s (model %s expects %s)",
                 json_string_value(json_object_get(in0, "name")), model, want_in);
        *status = 400;
        return error_body(R_KSERVE, 400, msg);
    }
    json_t *outs = json_object_get(b, "outputs"), *o;
    size_t i;
    json_array_foreach(outs, i, o) {
        const char *n = json_string_value(json_object_get(o, "name"));
        if (!n || strcmp(n, out_name) != 0) {
            snprintf(msg, sizeof msg, "Invalid output name: %s", n ? n : "(none)");
            *status = 400;
            return error_body(R_KSERVE, 400, msg);
        }
    }
    size_t n = json_array_size(data);
    json_t *flat = json_array(), *shape;
    for (i = 0; i < n; i++) {
        const char *t = json_string_value(json_array_get(data, i));
        if (embed) {
            json_t *e = embedding_of(t);
            json_array_extend(flat, e);
            json_decref(e);
        } else {
            char reply[1024];
            snprintf(reply, sizeof reply, "echo: %s", t);
            json_array_append_new(flat, json_string(reply));
        }
    }
    shape = embed ? json_pack("[i,i]", (int)n, 4) : json_pack("[i]", (int)n);
    return dump(json_pack("{s:s,s:s,s:[{s:s,s:s,s:o,s:o}]}", "model_name", model, "model_version",
                          "1", "outputs", "name", out_name, "datatype", embed ? "FP32" : "BYTES",
                          "shape", shape, "data", flat));
}

static char *error_body(route r, int status, const char *msg) {
    if (r == R_ANTHROPIC) {
        const char *type = status == 529   ? "overloaded_error"
                           : status == 429 ? "rate_limit_error"
                           : status == 401 ? "authentication_error"
                           : status >= 500 ? "api_error"
                                           : "invalid_request_error";
        return dump(
            json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type", type, "message", msg));
    }
    if (r == R_GEMINI_GEN || r == R_GEMINI_STREAM || r == R_GEMINI_EMBED)
        return dump(json_pack("{s:{s:i,s:s,s:s}}", "error", "code", status, "message", msg,
                              "status", status == 429 ? "RESOURCE_EXHAUSTED" : "UNAVAILABLE"));
    if (r == R_OLLAMA_CHAT || r == R_OLLAMA_GENERATE || r == R_OLLAMA_EMBED || r == R_TEI_EMBED ||
        r == R_TEI_RERANK || r == R_TGI_GENERATE || r == R_TGI_STREAM)
        return dump(json_pack("{s:s,s:s}", "error", msg, "error_type", "fake"));
    if (r == R_KSERVE)
        return dump(json_pack("{s:s}", "error", msg));
    return dump(json_pack("{s:{s:s,s:s,s:n}}", "error", "message", msg, "type",
                          status == 429 ? "requests" : "server_error", "code"));
}

/* ---- the handler -------------------------------------------------------------------------------
 */

typedef struct upload {
    char *data;
    size_t len;
} upload;

static enum MHD_Result queue_buffer(struct MHD_Connection *conn, unsigned status, char *body,
                                    const char *ctype, const char *h1, const char *v1) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", ctype);
    if (h1)
        MHD_add_response_header(resp, h1, v1);
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result queue_chunks(fake_provider *f, struct MHD_Connection *conn, chunks *c,
                                    uint64_t size, const char *ctype) {
    pthread_mutex_lock(&f->lock);
    f->active++;
    pthread_mutex_unlock(&f->lock);
    c->f = f;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(size, 4096, chunks_read, c, chunks_free);
    MHD_add_response_header(resp, "Content-Type", ctype);
    enum MHD_Result ret = MHD_queue_response(conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *data_len, void **state) {
    fake_provider *f = cls;
    (void)version;
    upload *up = *state;
    if (!up) {
        up = calloc(1, sizeof *up);
        *state = up;
        return MHD_YES;
    }
    if (*data_len) {
        up->data = realloc(up->data, up->len + *data_len + 1);
        memcpy(up->data + up->len, data, *data_len);
        up->len += *data_len;
        up->data[up->len] = 0;
        *data_len = 0;
        return MHD_YES;
    }
    char key[96];
    request_key(conn, key, sizeof key);
    fault ft = {.kind = (fake_fault_kind)-1};
    pthread_mutex_lock(&f->lock);
    int idx = f->requests++;
    if (idx < MAX_LOG)
        snprintf(f->key_log[idx], sizeof f->key_log[idx], "%s", key);
    snprintf(f->last_body, sizeof f->last_body, "%s", up->data ? up->data : "");
    snprintf(f->last_path, sizeof f->last_path, "%s", url);
    for (int i = 0; i < f->n_faults; i++) {
        if (f->faults[i].path[0] && strcmp(f->faults[i].path, url) != 0)
            continue;
        ft = f->faults[i];
        memmove(f->faults + i, f->faults + i + 1,
                (size_t)(f->n_faults - i - 1) * sizeof *f->faults);
        f->n_faults--;
        break;
    }
    bool allowed = key_allowed(f->keys, key);
    pthread_mutex_unlock(&f->lock);

    route r = route_of(method, url);
    json_t *b = up->data ? json_loadb(up->data, up->len, 0, NULL) : NULL;
    enum MHD_Result ret;
    const char *bad = NULL;
    if (r == R_NONE) {
        ret = queue_buffer(conn, 404, error_body(r, 404, "no such route"), "application/json", NULL,
                           NULL);
        goto done;
    }
    if (!allowed) {
        ret = queue_buffer(conn, 401, error_body(r, 401, "Incorrect API key provided"),
                           "application/json", NULL, NULL);
        goto done;
    }
    if ((bad = check_request(r, conn, b))) {
        ret = queue_buffer(conn, 400, error_body(r, 400, bad), "application/json", NULL, NULL);
        goto done;
    }
    if (ft.kind == FAKE_SLOW)
        sleep_ms(ft.arg);
    char hdr[64];
    switch ((int)ft.kind) {
    case FAKE_STATUS:
        ret = queue_buffer(
            conn, (unsigned)ft.arg,
            error_body(r, (int)ft.arg, ft.arg == 529 ? "Overloaded" : "injected failure"),
            "application/json", NULL, NULL);
        goto done;
    case FAKE_RETRY_AFTER:
        snprintf(hdr, sizeof hdr, "%ld", ft.arg);
        ret = queue_buffer(conn, 429, error_body(r, 429, "Rate limit reached"), "application/json",
                           "Retry-After", hdr);
        goto done;
    case FAKE_RETRY_AFTER_MS:
        snprintf(hdr, sizeof hdr, "%ld", ft.arg);
        ret = queue_buffer(conn, 429, error_body(r, 429, "Rate limit reached"), "application/json",
                           "retry-after-ms", hdr);
        goto done;
    case FAKE_RETRY_AFTER_DATE: {
        time_t t = time(NULL) + ft.arg;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(hdr, sizeof hdr, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        ret = queue_buffer(conn, 429, error_body(r, 429, "Rate limit reached"), "application/json",
                           "Retry-After", hdr);
        goto done;
    }
    case FAKE_SPEND_LIMIT:
        ret = queue_buffer(
            conn, 429,
            strdup("{\"error\":{\"message\":\"You exceeded your current quota, please "
                   "check your plan and billing details.\",\"type\":\"insufficient_quota\","
                   "\"code\":\"insufficient_quota\"}}"),
            "application/json", NULL, NULL);
        goto done;
    case FAKE_NO_RETRY:
        ret = queue_buffer(conn, 503, error_body(r, 503, "do not retry this"), "application/json",
                           "x-should-retry", "false");
        goto done;
    case FAKE_MALFORMED:
        ret = queue_buffer(conn, 200, strdup("{\"choices\": [ {\"message\": oops"),
                           "application/json", NULL, NULL);
        goto done;
    case FAKE_HUGE: {
        size_t n = (size_t)ft.arg;
        char *big = malloc(n + 1);
        memset(big, 'x', n);
        memcpy(big, "{\"pad\":\"", 8);
        memcpy(big + n - 2, "\"}", 2);
        big[n] = 0;
        ret = queue_buffer(conn, 200, big, "application/json", NULL, NULL);
        goto done;
    }
    default:
        break;
    }

    if (r == R_KSERVE) {
        int status = 200;
        char *body = kserve_answer(url, b, &status);
        ret = queue_buffer(conn, (unsigned)status, body, "application/json", NULL, NULL);
        goto done;
    }
    const char *text = user_text(r, b);
    char reply[1024];
    snprintf(reply, sizeof reply, "echo: %s", text ? text : "");
    bool stream = is_stream(r, b);
    if (!stream) {
        char *body = full_answer(r, b, reply);
        if (ft.kind == FAKE_RESET) {
            chunks *c = calloc(1, sizeof *c);
            c->fail_after = ft.arg;
            chunks_add(c, body);
            ret = queue_chunks(f, conn, c, strlen(body), "application/json");
        } else {
            ret = queue_buffer(conn, 200, body, "application/json", NULL, NULL);
        }
        goto done;
    }
    chunks *c = calloc(1, sizeof *c);
    c->gap_ms = FAKE_STREAM_GAP_MS;
    c->fail_after = -1;
    size_t n_end = 0;
    bool chat = r != R_OAI_COMPLETE;
    stream_answer(r, reply, c, &n_end, chat);
    if (ft.kind == FAKE_TRUNCATE) {
        while (n_end-- > 0 && c->n > 0)
            free(c->items[--c->n]);
    } else if (ft.kind == FAKE_RESET) {
        c->fail_after = ft.arg;
    } else if (ft.kind == FAKE_ENDLESS) {
        /* The first delta, then the same delta forever. */
        c->endless = strdup(c->items[r == R_ANTHROPIC ? 2 : 0]);
        size_t keep = r == R_ANTHROPIC ? 3 : 1;
        while (c->n > keep)
            free(c->items[--c->n]);
        c->gap_ms = 10;
    } else if (ft.kind == FAKE_STREAM_ERROR) {
        size_t keep = r == R_ANTHROPIC ? 3 : 1;
        while (c->n > keep)
            free(c->items[--c->n]);
        chunks_add(c, stream_error_chunk(r));
    }
    ret = queue_chunks(f, conn, c, MHD_SIZE_UNKNOWN, content_type(r, true));
done:
    json_decref(b);
    return ret;
}

static void request_done(void *cls, struct MHD_Connection *conn, void **state,
                         enum MHD_RequestTerminationCode code) {
    (void)cls;
    (void)conn;
    (void)code;
    upload *up = *state;
    if (up) {
        free(up->data);
        free(up);
    }
    *state = NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

fake_provider *fake_provider_start(void) {
    fake_provider *f = calloc(1, sizeof *f);
    pthread_mutex_init(&f->lock, NULL);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                            NULL, NULL, answer, f, MHD_OPTION_SOCK_ADDR, &addr,
                            MHD_OPTION_NOTIFY_COMPLETED, request_done, f, MHD_OPTION_END);
    if (!f->d) {
        pthread_mutex_destroy(&f->lock);
        free(f);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u", (unsigned)info->port);
    return f;
}

void fake_provider_stop(fake_provider *f) {
    if (!f)
        return;
    MHD_stop_daemon(f->d);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

const char *fake_provider_url(const fake_provider *f) { return f->url; }

void fake_provider_set_key(fake_provider *f, const char *key) {
    pthread_mutex_lock(&f->lock);
    snprintf(f->keys, sizeof f->keys, "%s", key ? key : "");
    pthread_mutex_unlock(&f->lock);
}

void fake_provider_fault_on(fake_provider *f, const char *path, fake_fault_kind kind, long arg) {
    pthread_mutex_lock(&f->lock);
    if (f->n_faults < MAX_FAULTS) {
        fault *ft = &f->faults[f->n_faults++];
        ft->kind = kind;
        ft->arg = arg;
        snprintf(ft->path, sizeof ft->path, "%s", path ? path : "");
    }
    pthread_mutex_unlock(&f->lock);
}

void fake_provider_fault(fake_provider *f, fake_fault_kind kind, long arg) {
    fake_provider_fault_on(f, NULL, kind, arg);
}

void fake_provider_reset(fake_provider *f) {
    pthread_mutex_lock(&f->lock);
    f->n_faults = 0;
    f->requests = 0;
    f->last_body[0] = 0;
    f->last_path[0] = 0;
    pthread_mutex_unlock(&f->lock);
}

int fake_provider_requests(fake_provider *f) {
    pthread_mutex_lock(&f->lock);
    int n = f->requests;
    pthread_mutex_unlock(&f->lock);
    return n;
}

int fake_provider_active(fake_provider *f) {
    pthread_mutex_lock(&f->lock);
    int n = f->active;
    pthread_mutex_unlock(&f->lock);
    return n;
}

void fake_provider_key_of(fake_provider *f, int i, char *buf, size_t n) {
    pthread_mutex_lock(&f->lock);
    snprintf(buf, n, "%s", i >= 0 && i < MAX_LOG && i < f->requests ? f->key_log[i] : "");
    pthread_mutex_unlock(&f->lock);
}

void fake_provider_last_body(fake_provider *f, char *buf, size_t n) {
    pthread_mutex_lock(&f->lock);
    snprintf(buf, n, "%s", f->last_body);
    pthread_mutex_unlock(&f->lock);
}

void fake_provider_last_path(fake_provider *f, char *buf, size_t n) {
    pthread_mutex_lock(&f->lock);
    snprintf(buf, n, "%s", f->last_path);
    pthread_mutex_unlock(&f->lock);
}
