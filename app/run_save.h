/* run_save.h — `strata run --save`: the exchange becomes a conversation in
 * the database. The prompt is saved before generation starts, the reply
 * when it completes (or stops); a database that cannot be opened or written
 * is reported and generation goes on without saving. */
#ifndef ST_RUN_SAVE_H
#define ST_RUN_SAVE_H

#include "strata.h"

typedef struct run_saver run_saver;

/* Opens the database (db_path NULL: the default) and saves a conversation
 * with the user's prompt (the text the user gave, not a rendered template;
 * system_prompt may be NULL). Returns NULL after saying why on stderr when
 * that fails: the caller generates anyway. */
run_saver *run_save_begin(const char *db_path, const char *title, const st_model *m, const char *prompt,
                          const char *system_prompt, int n_prompt_tokens, const st_gen_params *gp);
/* Appends generated text to the reply. */
void run_save_piece(run_saver *r, const char *piece, int len);
/* Saves the reply with the session's statistics (st: st_generate's result;
 * anything but ST_OK marks it stopped), reports, and frees r. NULL is fine. */
void run_save_end(run_saver *r, st_status st, const st_session *s);

#endif
