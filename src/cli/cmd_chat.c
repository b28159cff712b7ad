/*
 * `ipfs-accelerate chat`: a conversation with a model through its own chat
 * template. On a terminal it prompts with "> " and streams each reply; with
 * stdin from a pipe or file every line is one user turn and the replies are
 * printed one after another (one per turn, each ending with a newline).
 *
 * The whole conversation is re-rendered with the template for each turn
 * (templates may treat the first or last message specially), and the
 * generator keeps what its KV cache already holds when the new rendering
 * starts with the same tokens, so a turn prefills only what is new. A reply
 * ends at EOS, at the template's end-of-turn token (<|im_end|>, <|eot_id|>,
 * <end_of_turn>), at --max-tokens or at a --stop string.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ia/runtime.h"

static const char chat_usage[] =
    "usage: ipfs-accelerate chat --model M [--system TEXT] [options]\n"
    "\n"
    "Chats with a model using its chat template (ChatML/Qwen, Llama-2, Llama-3, Mistral,\n"
    "Zephyr or Gemma, recognised from tokenizer_config.json or the GGUF metadata).\n"
    "On a terminal: type a message after \"> \" (Ctrl-D ends). From a pipe: each line of\n"
    "stdin is a user turn; each reply is printed on its own line(s).\n"
    "\n"
    "  --model M            HF model directory or .gguf file, or the CID of either in the\n"
    "                       local store (CID, CID/sub/path, /ipfs/CID/...)\n"
    "  --repo DIR           the store for a CID model (default $IPFS_ACCELERATE_HOME or\n"
    "                       ~/.local/share/ipfs-accelerate)\n"
    "  --system TEXT        a system message first\n"
    "  --max-tokens N       most tokens per reply (default 128)\n"
    "  sampling, --stop, --threads, --dtype, --kv-cache, --context, --device: as for generate\n";

typedef struct conversation {
    ia_chat_message *m;
    char **owned; /* contents we allocated, parallel to m */
    size_t n, cap;
} conversation;

static ia_status conv_add(conversation *c, const char *role, char *content_owned) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        ia_chat_message *m = ia_realloc_array(c->m, cap, sizeof *m);
        if (m)
            c->m = m;
        char **o = m ? ia_realloc_array(c->owned, cap, sizeof *o) : NULL;
        if (!m || !o) {
            free(content_owned);
            return ia_error_set(IA_ENOMEM, "chat: out of memory for the conversation");
        }
        c->owned = o;
        c->cap = cap;
    }
    c->m[c->n] = (ia_chat_message){role, content_owned};
    c->owned[c->n++] = content_owned;
    return IA_OK;
}

static void conv_free(conversation *c) {
    for (size_t i = 0; i < c->n; i++)
        free(c->owned[i]);
    free(c->owned);
    free(c->m);
}

/* One turn: render, generate (streaming), append the reply. */
static ia_status chat_turn(ia_generator *g, const ia_chat_template *t, conversation *conv,
                           const cli_gen_args *a, int32_t end_id, cli_out_state *o) {
    char *prompt = NULL;
    ia_generate_result res = {0};
    ia_status st = ia_chat_template_render(t, conv->m, conv->n, true, &prompt);
    if (st != IA_OK)
        return st;
    ia_generate_request req = ia_generate_request_default();
    req.prompt = prompt;
    req.raw_prompt = true;
    req.reuse_cache = true;
    req.max_tokens = a->max_tokens;
    req.sampling = a->sampling;
    req.stop = a->stop;
    req.n_stop = a->n_stop;
    req.ignore_eos = a->ignore_eos;
    req.extra_eos = end_id;
    req.on_text = cli_gen_write;
    req.ctx = o;
    st = ia_generator_generate(g, &req, &res);
    free(prompt);
    if (st == IA_OK && !o->closed && !o->failed) {
        cli_gen_write(o, "\n", 1);
        char *reply = ia_strdup(res.text);
        st = reply ? conv_add(conv, "assistant", reply)
                   : ia_error_set(IA_ENOMEM, "chat: out of memory");
    }
    ia_generate_result_free(&res);
    return st;
}

int cmd_chat(int argc, char **argv) {
    cli_gen_args a;
    int rc = cli_gen_parse("chat", chat_usage, argc, argv, &a);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (a.prompt)
        return cli_usage_error("chat", "--prompt is for generate; chat reads turns from stdin");
    signal(SIGPIPE, SIG_IGN);
    ia_generator *g = NULL;
    conversation conv = {0};
    cli_out_state o = {0};
    char *line = NULL;
    size_t cap = 0;
    char *model_path = NULL; /* the model's path on disk (a CID resolved) */
    ia_status st = ia_model_source_resolve(a.model, a.repo, &model_path, NULL);
    if (st == IA_OK)
        st = ia_generator_load(model_path, &a.opts, &g);
    free(model_path);
    if (st != IA_OK)
        goto done;
    const ia_chat_template *t = ia_generator_chat_template(g);
    if (!t) {
        st = IA_EUNSUPPORTED;
        ia_error_prefix("%s", a.model);
        goto done;
    }
    int32_t end_id =
        ia_tokenizer_token_to_id(ia_generator_tokenizer(g), ia_chat_template_end_of_turn(t));
    if (a.system) {
        char *sys = ia_strdup(a.system);
        if ((st = sys ? conv_add(&conv, "system", sys) : IA_ENOMEM) != IA_OK)
            goto done;
    }
    bool tty = isatty(0);
    for (size_t lineno = 1;; lineno++) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        ssize_t len = getline(&line, &cap, stdin);
        if (len < 0)
            break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        size_t bad;
        if (!ia_utf8_valid(line, (size_t)len, &bad)) {
            st = ia_error_set(IA_EINVAL, "stdin line %zu is not valid UTF-8 (byte %zu)", lineno,
                              bad);
            goto done;
        }
        char *text = ia_strdup(line);
        if ((st = text ? conv_add(&conv, "user", text) : IA_ENOMEM) != IA_OK)
            goto done;
        if ((st = chat_turn(g, t, &conv, &a, end_id, &o)) != IA_OK || o.closed || o.failed)
            goto done;
    }
    if (tty)
        fputc('\n', stdout);
done:
    rc = 0;
    if (st != IA_OK) {
        rc = cli_fail("chat", st);
    } else if (o.failed) {
        fprintf(stderr, "ipfs-accelerate chat: writing to stdout: %s\n", strerror(o.err));
        rc = 1;
    }
    free(line);
    conv_free(&conv);
    ia_generator_free(g);
    return rc;
}
