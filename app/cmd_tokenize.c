/* cmd_tokenize.c — `strata tokenize`: token ids and pieces of a text. */
#include "app.h"
#include "args.h"
#include "strata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: strata tokenize [-m model.gguf] -p TEXT [--no-bos] [--parse-special] [--ids]\n"
           "\n"
           "Prints one token per line: its id and its vocabulary piece.\n"
           "\n"
           "  -m, --model FILE     GGUF model or vocab file (default: the bundled model)\n"
           "  -p, --prompt TEXT    the text to tokenize\n"
           "      --no-bos         do not add the BOS/EOS tokens the model asks for\n"
           "      --parse-special  treat the text of control tokens (\"<s>\") as those tokens\n"
           "      --ids            print only the ids, space-separated, on one line\n"
           "  -h, --help           this text\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL;
    bool add_special = true, parse_special = false, ids_only = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { if (!(model = arg_value(argc, argv, &i, "tokenize"))) return 2; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { if (!(text = arg_value(argc, argv, &i, "tokenize"))) return 2; }
        else if (!strcmp(a, "--no-bos")) add_special = false;
        else if (!strcmp(a, "--parse-special")) parse_special = true;
        else if (!strcmp(a, "--ids")) ids_only = true;
        else { fprintf(stderr, "strata tokenize: unknown option '%s' (see strata tokenize --help)\n", a); return 2; }
    }
    if (!text) { fprintf(stderr, "strata tokenize: no text given (-p TEXT)\n"); return 2; }
    if (!model && !(model = default_model_path())) {
        fprintf(stderr, "strata tokenize: no model given (-m FILE) and the bundled model was not found\n");
        return 2;
    }
    /* only the vocabulary is needed: open the GGUF, not the whole model, so
     * vocab-only files work too */
    st_error err = {0};
    st_gguf *g = NULL;
    st_tokenizer *tok = NULL;
    int rc = 1;
    int32_t *ids = NULL;
    if (st_gguf_open(model, &g, &err) || st_tok_load(g, &tok, &err)) {
        fprintf(stderr, "strata tokenize: %s\n", err.msg);
        goto out;
    }
    size_t len = strlen(text);
    int64_t n = st_tok_encode(tok, text, len, add_special, parse_special, NULL, 0);
    if (n < 0) { fprintf(stderr, "strata tokenize: cannot tokenize the text\n"); goto out; }
    ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    if (!ids) goto out;
    st_tok_encode(tok, text, len, add_special, parse_special, ids, n);
    for (int64_t i = 0; i < n; i++) {
        if (ids_only) printf("%s%d", i ? " " : "", ids[i]);
        else printf("%6d -> '%s'\n", ids[i], st_tok_piece(tok, ids[i]));
    }
    if (ids_only) printf("\n");
    rc = 0;
out:
    free(ids);
    st_tok_free(tok);
    st_gguf_close(g);
    return rc;
}
