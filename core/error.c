#include "error.h"
#include <stdarg.h>
#include <stdio.h>

st_status st_error_set(st_error *err, st_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

const char *st_status_str(st_status s) {
    switch (s) {
    case ST_OK: return "ok";
    case ST_ERR_IO: return "i/o error";
    case ST_ERR_FORMAT: return "format error";
    case ST_ERR_UNSUPPORTED: return "unsupported";
    case ST_ERR_NOMEM: return "out of memory";
    case ST_ERR_ARG: return "invalid argument";
    case ST_ERR_CANCELLED: return "cancelled";
    case ST_ERR_CONTEXT: return "context full";
    case ST_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}
