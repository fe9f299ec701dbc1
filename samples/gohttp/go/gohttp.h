/* Declarations shared by the cgo preambles of the gohttp library. */
#ifndef SEAM_GOHTTP_H
#define SEAM_GOHTTP_H
#include <stddef.h>
#include <stdint.h>

/* A request handler registered by Python (a cffi ABI-mode ffi.callback).
 * It must call WriteResponse(req_id, ...) to produce the response body and
 * return 0; a non-zero return makes the server answer 500. */
typedef int (*seam_http_handler)(int64_t req_id, const char *path, size_t path_len,
                                 const char *body, size_t body_len);

#endif
