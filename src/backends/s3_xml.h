/*
 * The small XML reader behind the S3 client (private to src/backends/).
 *
 * S3 answers in XML: ListObjectsV2 pages, InitiateMultipartUpload's upload
 * id, CompleteMultipartUpload's result (which can be an error inside a 200),
 * ListMultipartUploads and the <Error> document of every failure. We need a
 * handful of leaf elements from each, so instead of a general XML library
 * this is a bounded scanner: it walks the document once, keeps the path of
 * open elements (local names, namespace prefixes dropped, joined by '/'),
 * and reports each element as it closes together with the text directly
 * inside it, entities decoded. It refuses what S3 never sends and what
 * makes XML dangerous: DOCTYPE (so no entity expansion), NUL bytes, nesting deeper
 * than IA_S3_XML_MAX_DEPTH, paths or element texts past their limits,
 * mismatched or unclosed tags, and text outside the root element.
 */
#ifndef IA_BACKENDS_S3_XML_H
#define IA_BACKENDS_S3_XML_H

#include "ia/base.h"

#define IA_S3_XML_MAX_DEPTH 32
#define IA_S3_XML_MAX_PATH 512
#define IA_S3_XML_MAX_TEXT (64 * 1024)

/* Called as each element closes: path is "Root/Child/Leaf", text the
 * decoded character data since the element's last child opened or closed
 * (for a leaf: its whole text), NUL-terminated. Both valid during the call
 * only. A status other than IA_OK stops the walk and is returned. */
typedef ia_status (*ia_s3_xml_fn)(void *ctx, const char *path, const char *text, size_t len);

/* Walks len bytes of XML; IA_EPARSE with the byte offset for malformed or
 * refused input. */
ia_status ia_s3_xml_walk(const char *xml, size_t len, ia_s3_xml_fn fn, void *ctx);

/* From an <Error> document: Code and Message (truncated to fit, "" when
 * absent). IA_EPARSE when the body is not an <Error> document. */
ia_status ia_s3_xml_error(const char *xml, size_t len, char *code, size_t code_cap, char *message,
                          size_t message_cap);

/* The text of the first element at exactly path (malloc'd), IA_ENOTFOUND
 * when there is none. */
ia_status ia_s3_xml_find(const char *xml, size_t len, const char *path, char **out);

/* How many elements end at exactly path. */
ia_status ia_s3_xml_count(const char *xml, size_t len, const char *path, size_t *count);

#endif /* IA_BACKENDS_S3_XML_H */
