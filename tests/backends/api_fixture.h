/*
 * Shared set-up for the backends tests that talk HTTP: a fake provider (one
 * per test binary, started on first use) and a client over an endpoints
 * YAML text in which every "@URL@" becomes the fake's base URL. The keyed
 * endpoints read IA_TEST_FAKE_KEY, which api_fixture_env() sets.
 */
#ifndef IA_TEST_API_FIXTURE_H
#define IA_TEST_API_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include "backends/backends_internal.h"
#include "fake_provider.h"

#define FIXTURE_KEY "sk-test-fixture-0123456789"

static fake_provider *fixture_fake;

static inline fake_provider *api_fake(void) {
    if (!fixture_fake) {
        fixture_fake = fake_provider_start();
        if (!fixture_fake) {
            fprintf(stderr, "cannot start the fake provider\n");
            exit(1);
        }
        setenv("IA_TEST_FAKE_KEY", FIXTURE_KEY, 1);
    }
    return fixture_fake;
}

/* The YAML with @URL@ replaced (malloc'd). */
static inline char *api_yaml(const char *tmpl) {
    const char *url = fake_provider_url(api_fake());
    size_t n = 0;
    for (const char *p = tmpl; (p = strstr(p, "@URL@")); p += 5)
        n++;
    char *out = malloc(strlen(tmpl) + n * strlen(url) + 1);
    char *o = out;
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "@URL@", 5) == 0) {
            o = stpcpy(o, url);
            p += 5;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    return out;
}

typedef struct api_env {
    ia_api_config *cfg;
    ia_api_client *client;
} api_env;

/* Parses tmpl and creates a client; both NULL (and the message set) on failure. */
static inline ia_status api_env_open(const char *tmpl, api_env *e) {
    char *y = api_yaml(tmpl);
    e->cfg = NULL;
    e->client = NULL;
    ia_status st = ia_api_config_parse(y, strlen(y), "test.yaml", &e->cfg);
    free(y);
    if (st == IA_OK) {
        st = ia_api_client_create(e->cfg, &e->client);
        if (st != IA_OK) {
            ia_api_config_free(e->cfg);
            e->cfg = NULL;
        }
    }
    return st;
}

static inline void api_env_close(api_env *e) {
    ia_api_client_destroy(e->client);
    ia_api_config_free(e->cfg);
    e->client = NULL;
    e->cfg = NULL;
}

static inline ia_api_request api_req(ia_api_op op, const char *const *texts, size_t n) {
    ia_api_request r = {.op = op,
                        .texts = texts,
                        .n_texts = n,
                        .temperature = -1,
                        .priority = IA_API_PRIORITY_NORMAL};
    return r;
}

#endif /* IA_TEST_API_FIXTURE_H */
