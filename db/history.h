/* history.h — conversations and their messages (docs/DATABASE.md).
 *
 * Writers: st_db_conv_create (optionally with the first messages, in one
 * transaction), st_db_message_add (one reply or prompt, one transaction:
 * written when it completes), st_db_conv_delete (messages and their index
 * rows go with it).
 * Readers take callbacks; the strings they see are valid during the call. */
#ifndef ST_DB_HISTORY_H
#define ST_DB_HISTORY_H

#include "db.h"

#include <stdio.h>

typedef struct st_db_conversation {
    int64_t id;
    const char *title;
    const char *model_name;
    const char *model_file;
    const char *model_hash;     /* st_db_model_fingerprint() of the file */
    const char *system_prompt;
    const char *sampling;       /* JSON object of the sampling settings */
    int64_t created_ms, updated_ms;
    int n_messages;             /* filled by readers */
} st_db_conversation;

typedef struct st_db_message {
    int64_t id, conversation_id;  /* filled by readers; id also by st_db_message_add */
    const char *role;             /* "system", "user", "assistant" */
    const char *content;
    int n_tokens;
    int64_t created_ms;           /* 0: now */
    bool stopped;                 /* a reply the user stopped (or an error ended) before it completed */
    /* generation statistics of a reply (has_stats) */
    bool has_stats;
    int n_prompt;                 /* prompt tokens evaluated for it */
    double prompt_tps, decode_tps, ttft_ms;
    double ready_rate;            /* layer store: acquisitions ready when needed, 0..1; < 0: not budgeted */
    const char *backend;
} st_db_message;

/* ---- writing ---- */
/* Creates a conversation (created/updated 0: now) and adds msgs[0..n_msgs)
 * in the same transaction; *id is the new conversation's. */
st_status st_db_conv_create(st_db *db, const st_db_conversation *c, const st_db_message *msgs, int n_msgs,
                            int64_t *id, st_error *err);
/* Adds one message to conversation m->conversation_id (and touches its
 * updated time); *id (may be NULL) is the message's. */
st_status st_db_message_add(st_db *db, const st_db_message *m, int64_t *id, st_error *err);
/* Deletes a conversation with its messages; *n_messages (may be NULL) says
 * how many went. ST_ERR_ARG when there is no such conversation. */
st_status st_db_conv_delete(st_db *db, int64_t id, int *n_messages, st_error *err);

/* Fills a reply's statistics from a session's snapshot after st_generate. */
void st_db_message_set_stats(st_db_message *m, const st_stats *s);
/* The sampling settings as a JSON object, for st_db_conversation.sampling. */
void st_db_sampling_json(const st_sampler_params *p, int n_predict, char *buf, size_t n);
/* A cheap fingerprint of a model file: "fp1:" + 16 hex digits of a 64-bit
 * hash over the size and the first and last MiB (files this large are not
 * hashed whole on every run). "" when the file cannot be read. */
void st_db_model_fingerprint(const char *path, char *buf, size_t n);

/* ---- reading ---- */
typedef bool (*st_db_conv_cb)(void *user, const st_db_conversation *c);      /* false: stop */
typedef bool (*st_db_message_cb)(void *user, const st_db_message *m);
typedef struct st_db_search_hit {
    int64_t conversation_id, message_id;
    const char *title;
    const char *role;
    const char *snippet;        /* the matching text with the matches between the markers */
    int64_t created_ms;
} st_db_search_hit;
typedef bool (*st_db_search_cb)(void *user, const st_db_search_hit *h);

/* Most recently active first; model (may be NULL) matches part of the model
 * name or file; limit <= 0: all. */
st_status st_db_conv_list(st_db *db, int limit, const char *model, st_db_conv_cb cb, void *user, st_error *err);
/* One conversation; ST_ERR_ARG when there is none with that id. */
st_status st_db_conv_get(st_db *db, int64_t id, st_db_conv_cb cb, void *user, st_error *err);
/* Its messages in order. */
st_status st_db_messages(st_db *db, int64_t conversation_id, st_db_message_cb cb, void *user, st_error *err);
/* Full-text search (FTS5). With raw, query is FTS5 query syntax; otherwise
 * each word of query must appear (quoted, so punctuation is harmless).
 * Best matches first; hl_open/hl_close surround each match in the snippet. */
st_status st_db_search(st_db *db, const char *query, bool raw, int limit, const char *hl_open, const char *hl_close,
                       st_db_search_cb cb, void *user, st_error *err);

/* ---- export ---- */
typedef enum { ST_DB_EXPORT_MD, ST_DB_EXPORT_JSON } st_db_export_format;
/* Writes one conversation as Markdown (for people) or a JSON object (for
 * tools; invalid UTF-8 is replaced by U+FFFD so it always parses). */
st_status st_db_export(st_db *db, int64_t id, st_db_export_format fmt, FILE *f, st_error *err);

#endif
