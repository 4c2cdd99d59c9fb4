/* main.c — the strata command line: dispatch to subcommands. */
#include "app.h"
#include "strata.h"
#ifdef STRATA_VULKAN
#include "strata_vk.h"
#endif

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "strata %s — run Llama-family GGUF models locally\n"
            "\n"
            "usage: strata <command> [options]\n"
            "       strata              (no command: the chat app on the bundled model)\n"
            "\n"
            "commands:\n"
            "  chat       the terminal app: chat with live engine panels\n"
            "  run        generate text from a prompt\n"
            "  tokenize   show the token ids and pieces of a text\n"
            "  template   render a conversation with a model's chat template\n"
            "  info       show a GGUF file's metadata and tensor table\n"
            "  bench      measure prompt and generation speed (like llama-bench)\n"
            "  genmodel   write a random-weight llama GGUF of a named shape (for benchmarks)\n"
            "  devices    list the Vulkan devices (name, type, VRAM, subgroup size, features)\n"
            "  history    list, show, search, export and delete saved conversations\n"
            "\n"
            "`strata <command> --help` describes each command.\n",
            STRATA_VERSION);
}

int main(int argc, char **argv) {
#ifdef STRATA_VULKAN
    st_vk_register(); /* sessions may ask for --backend vulkan|auto */
#endif
    if (argc < 2) return cmd_chat(argc, argv);
    const char *c = argv[1];
    if (!strcmp(c, "-h") || !strcmp(c, "--help") || !strcmp(c, "help")) { usage(stdout); return 0; }
    if (!strcmp(c, "--version")) { printf("strata %s\n", STRATA_VERSION); return 0; }
    if (!strcmp(c, "chat")) return cmd_chat(argc - 1, argv + 1);
    if (!strcmp(c, "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(c, "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(c, "template")) return cmd_template(argc - 1, argv + 1);
    if (!strcmp(c, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(c, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(c, "genmodel")) return cmd_genmodel(argc - 1, argv + 1);
    if (!strcmp(c, "devices")) return cmd_devices(argc - 1, argv + 1);
    if (!strcmp(c, "history")) return cmd_history(argc - 1, argv + 1);
    fprintf(stderr, "strata: unknown command '%s'\n\n", c);
    usage(stderr);
    return 2;
}
