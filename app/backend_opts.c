/* backend_opts.c — see backend_opts.h. */
#include "backend_opts.h"

#include "args.h"

#include <string.h>
#ifdef STRATA_VULKAN
#include "strata_vk.h"
#endif

const char *const backend_opts_help =
    "compute backend:\n"
    "      --backend B         cpu, vulkan or auto (default: auto = a discrete Vulkan GPU if there is one,\n"
    "                          else the CPU)\n"
    "      --device N          the Vulkan device to use (see strata devices; default: the best one)\n";

void backend_opts_default(st_session_params *p) { p->backend = ST_BACKEND_AUTO; }

int backend_opt_parse(const char *cmd, int argc, char **argv, int *i, st_session_params *p) {
    const char *a = argv[*i], *v;
    if (!strcmp(a, "--backend")) {
        if (!(v = arg_value(argc, argv, i, cmd))) return -1;
        if (!strcmp(v, "cpu")) p->backend = ST_BACKEND_CPU;
        else if (!strcmp(v, "vulkan")) p->backend = ST_BACKEND_VULKAN;
        else if (!strcmp(v, "auto")) p->backend = ST_BACKEND_AUTO;
        else {
            fprintf(stderr, "strata %s: --backend expects cpu, vulkan or auto, got '%s'\n", cmd, v);
            return -1;
        }
        return 1;
    }
    if (!strcmp(a, "--device")) {
        long n;
        if (!(v = arg_value(argc, argv, i, cmd)) || !arg_int(cmd, a, v, 0, 255, &n)) return -1;
        p->device = (int)n;
        return 1;
    }
    return 0;
}

void backend_report(FILE *f, const char *cmd, const st_session_params *p, const st_session *s) {
    if (p->backend != ST_BACKEND_AUTO) return;
    st_stats ss;
    st_session_stats(s, &ss);
    if (ss.backend && strcmp(ss.backend, "cpu") != 0) {
#ifdef STRATA_VULKAN
        st_vk_device_info d[16];
        st_error e = {0};
        int idx = st_vk_pick_device(p->device, p->device < 0, &e);
        int n = st_vk_list_devices(d, 16, &e);
        if (idx >= 0 && idx < n && idx < 16) {
            fprintf(f, "strata %s: backend vulkan on device %d, %s\n", cmd, idx, d[idx].name);
            return;
        }
#endif
        fprintf(f, "strata %s: backend %s\n", cmd, ss.backend);
        return;
    }
#ifdef STRATA_VULKAN
    st_error e = {0};
    if (st_vk_probe_device(p->device, &e) < 0) /* in a child: the CPU path loads no driver */
        fprintf(f, "strata %s: no discrete Vulkan GPU, running on the CPU (%s)\n", cmd, e.msg);
#else
    fprintf(f, "strata %s: built without Vulkan, running on the CPU\n", cmd);
#endif
}
