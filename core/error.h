/* error.h — status codes and error messages shared by every core module.
 *
 * Functions that can fail return st_status and, when given a non-NULL
 * st_error, fill it with a message naming the file, field or offset and what
 * was expected. Library code never exits: only app/ decides that. */
#ifndef ST_ERROR_H
#define ST_ERROR_H

typedef enum {
    ST_OK = 0,
    ST_ERR_IO,           /* open/read/mmap failed */
    ST_ERR_FORMAT,       /* malformed file (GGUF structure, bad values) */
    ST_ERR_UNSUPPORTED,  /* well-formed but not something we run */
    ST_ERR_NOMEM,
    ST_ERR_ARG,          /* bad argument from the caller */
    ST_ERR_CANCELLED,
    ST_ERR_CONTEXT,      /* context window full */
    ST_ERR_INTERNAL,
} st_status;

typedef struct st_error {
    st_status code;
    char msg[512];
} st_error;

/* Sets err (if non-NULL) and returns code, so callers can write
 *   return st_error_set(err, ST_ERR_FORMAT, "%s: offset %llu: ...", ...); */
st_status st_error_set(st_error *err, st_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

const char *st_status_str(st_status s);

#endif
