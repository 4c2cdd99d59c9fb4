#include "store_opts.h"

#include "args.h"

#include <stdlib.h>
#include <string.h>

const char *const store_opts_help =
    "Layer store (default: the layers are used in place from the mmap):\n"
    "      --cache-layers N    keep at most N layers resident, stream the rest from the file\n"
    "      --mem-budget SIZE   bytes for resident layers + output tensors, e.g. 2G or 512M\n"
    "      --cache-policy P    ring (default: pinned layers + a ring of streaming slots) or lru\n"
    "      --prefetch D        auto (adaptive distance, default), off (synchronous loads), or N layers ahead\n"
    "      --prefetch-threads K  reader threads (default: auto); they share each layer's load in chunks\n"
    "      --prefetch-chunk SIZE bytes per read and upload (default 16M; 4M into GPU slots; at most 64M)\n"
    "      --ring-slots N      streaming slots of the ring policy (default: auto)\n"
    "      --direct-io         read with O_DIRECT (bypasses the page cache)\n"
    "      --host-cache SIZE|all  GPU slots: keep streamed layers in SIZE of pinned host memory (all:\n"
    "                          every one), read from the file once at start; each load is then one DMA\n"
    "      --gpu-cache-layers N, --vram-budget SIZE\n"
    "                          the same as --cache-layers / --mem-budget: with --backend vulkan the\n"
    "                          layer slots are device memory, and the rest streams into VRAM\n";

int store_opt_parse(const char *cmd, int argc, char **argv, int *i, st_session_params *p) {
    const char *a = argv[*i], *v;
    long l;
#define VAL() do { if (!(v = arg_value(argc, argv, i, cmd))) return -1; } while (0)
    if (!strcmp(a, "--cache-layers") || !strcmp(a, "--gpu-cache-layers")) {
        VAL();
        if (!arg_int(cmd, a, v, 1, 1 << 20, &l)) return -1;
        p->cache_layers = (int)l;
    } else if (!strcmp(a, "--mem-budget") || !strcmp(a, "--vram-budget")) {
        VAL();
        if (!arg_size(cmd, a, v, &p->mem_budget)) return -1;
        if (!p->mem_budget) { fprintf(stderr, "strata %s: %s must be positive\n", cmd, a); return -1; }
    } else if (!strcmp(a, "--cache-policy")) {
        VAL();
        if (!strcmp(v, "ring")) p->cache_policy = ST_CACHE_RING;
        else if (!strcmp(v, "lru")) p->cache_policy = ST_CACHE_LRU;
        else { fprintf(stderr, "strata %s: --cache-policy expects ring or lru, got '%s'\n", cmd, v); return -1; }
    } else if (!strcmp(a, "--prefetch")) {
        VAL();
        if (!strcmp(v, "auto")) p->prefetch = ST_PREFETCH_AUTO;
        else if (!strcmp(v, "off")) p->prefetch = ST_PREFETCH_OFF;
        else {
            char *e;
            l = strtol(v, &e, 10);
            if (*e || e == v || l < 1 || l > 64) {
                fprintf(stderr, "strata %s: --prefetch expects auto, off or a distance in 1..64, got '%s'\n", cmd, v);
                return -1;
            }
            p->prefetch = (int)l;
        }
    } else if (!strcmp(a, "--prefetch-threads")) {
        VAL();
        if (!arg_int(cmd, a, v, 1, 64, &l)) return -1;
        p->prefetch_threads = (int)l;
    } else if (!strcmp(a, "--prefetch-chunk")) {
        VAL();
        uint64_t b;
        if (!arg_size(cmd, a, v, &b)) return -1;
        if (b < 4096 || b > (64u << 20)) {
            fprintf(stderr, "strata %s: %s expects 4K..64M, got '%s'\n", cmd, a, v);
            return -1;
        }
        p->prefetch_chunk = (uint32_t)b;
    } else if (!strcmp(a, "--ring-slots")) {
        VAL();
        if (!arg_int(cmd, a, v, 1, 1 << 20, &l)) return -1;
        p->ring_slots = (int)l;
    } else if (!strcmp(a, "--host-cache")) {
        VAL();
        if (!strcmp(v, "all")) p->host_cache = UINT64_MAX; /* every streamed layer (the memory check still applies) */
        else if (!arg_size(cmd, a, v, &p->host_cache)) return -1;
        if (!p->host_cache) { fprintf(stderr, "strata %s: %s must be positive\n", cmd, a); return -1; }
    } else if (!strcmp(a, "--direct-io")) {
        p->direct_io = true;
    } else {
        return 0;
    }
#undef VAL
    return 1;
}

void store_host_cache_notice(FILE *f, const char *cmd, const st_session_params *p, const char *backend,
                             const st_store_figures *t) {
    if (!p->host_cache || t->host_cache_layers > 0) return;
    const char *why = !t->budgeted                  ? "no layer budget: every layer stays resident (add --vram-budget or --gpu-cache-layers)"
                    : strcmp(backend, "cpu") == 0   ? "the CPU backend's layer slots are host memory already"
                    : t->n_pinned >= t->n_layer     ? "every layer fits in the budget and is read once"
                                                    : NULL;
    if (why) fprintf(f, "strata %s: --host-cache caches nothing: %s\n", cmd, why);
    else fprintf(f, "strata %s: --host-cache caches nothing: it is smaller than one layer (%.1f MiB)\n", cmd,
                 t->slot_bytes / 1048576.0);
}

void store_print_figures(FILE *f, const st_store_figures *t) {
    if (!t->budgeted) {
        fprintf(f, "layer store: mmap (no budget: %d layers used in place, no copies, no prefetch threads)\n", t->n_layer);
        return;
    }
    fprintf(f, "layer store: %s, %d slots of %.1f MiB (%d pinned + %d streaming) for %d layers; "
               "slots + output tensors %.1f MiB",
            t->policy == ST_CACHE_LRU ? "lru" : "ring", t->n_slots, t->slot_bytes / 1048576.0, t->n_pinned, t->n_ring,
            t->n_layer, (t->slot_alloc_bytes + t->fixed_bytes) / 1048576.0);
    if (t->budget_bytes) fprintf(f, " of a %.1f MiB budget", t->budget_bytes / 1048576.0);
    fprintf(f, "; %s, prefetch %s", t->direct_io ? "O_DIRECT" : "pread", t->prefetch_on ? "on" : "off");
    if (t->prefetch_on)
        fprintf(f, " (%d threads, distance %d now, %d max, %d limit)", t->prefetch_threads, t->distance,
                t->distance_max, t->distance_limit);
    fprintf(f, "\n");
    fprintf(f,
            "  acquisitions %llu: ready when needed %.2f%%, waited for a prefetch %llu, sync loads %llu, errors %llu, "
            "stall %.1f ms\n",
            (unsigned long long)t->acquires, t->acquires ? 100.0 * t->ready / t->acquires : 100.0,
            (unsigned long long)t->waits, (unsigned long long)t->sync_loads, (unsigned long long)t->errors,
            t->stall_ns / 1e6);
    fprintf(f, "  read %.1f MiB in %llu loads, %.1f MB/s while reading (%.2f s busy)\n", t->bytes_read / 1048576.0,
            (unsigned long long)t->loads, t->read_mbps, t->read_busy_ns / 1e9);
    fprintf(f,
            "  prefetch requests %llu, de-duplicated %llu, dropped (queue full) %llu, no slot %llu, cancelled %llu; "
            "queue peak %d of %d\n",
            (unsigned long long)t->issued, (unsigned long long)t->dedup, (unsigned long long)t->dropped_full,
            (unsigned long long)t->no_slot, (unsigned long long)t->cancelled, t->queue_peak, t->queue_cap);
    fprintf(f, "  resident layer bytes: %.1f MiB now, %.1f MiB peak; slot memory %.1f MiB; slots used %d of %d\n",
            t->resident_bytes / 1048576.0, t->peak_resident_bytes / 1048576.0, t->slot_alloc_bytes / 1048576.0,
            t->slots_used, t->n_slots);
    if (t->bytes_uploaded || t->host_cache_layers)
        fprintf(f, "  uploaded %.1f MiB to device slots; host cache: %d layer%s in %.1f MiB of pinned memory, %llu loads from it\n",
                t->bytes_uploaded / 1048576.0, t->host_cache_layers, t->host_cache_layers == 1 ? "" : "s", t->host_cache_bytes / 1048576.0,
                (unsigned long long)t->host_cache_loads);
}
