/*
 * formats_internal: small helpers shared by the safetensors and config
 * readers, private to src/formats/. Both readers report a JSON value of the
 * wrong kind the same way ("must be an integer, got string"), so the word
 * for each JSON type lives here once.
 */
#ifndef IA_FORMATS_INTERNAL_H
#define IA_FORMATS_INTERNAL_H

#include <jansson.h>

/* The word a user would use for the JSON type of v: "object", "array",
 * "string", "integer", "number" (a real), "boolean" or "null". */
static inline const char *formats_json_type_word(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown value";
}

#endif /* IA_FORMATS_INTERNAL_H */
