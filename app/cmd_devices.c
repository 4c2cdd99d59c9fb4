/* cmd_devices.c — `strata devices`: the Vulkan devices strata can see. */
#include "app.h"

#include <stdio.h>
#include <string.h>
#ifdef STRATA_VULKAN
#include "strata_vk.h"
#endif

int cmd_devices(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: strata devices\n\n"
                   "Lists the Vulkan devices: index (for --device), name, type, VRAM, subgroup size and the\n"
                   "features the Vulkan backend uses. `--backend auto` picks the first discrete GPU.\n");
            return 0;
        }
        fprintf(stderr, "strata devices: unknown option '%s'\n", argv[i]);
        return 2;
    }
#ifndef STRATA_VULKAN
    fprintf(stderr, "strata devices: this strata was built without Vulkan (-DSTRATA_VULKAN=OFF)\n");
    return 1;
#else
    st_vk_device_info d[16];
    st_error err = {0};
    int n = st_vk_list_devices(d, 16, &err);
    if (n < 0) {
        fprintf(stderr, "strata devices: %s\n", err.msg);
        return 1;
    }
    if (n == 0) {
        printf("no Vulkan devices\n");
        return 0;
    }
    int pick = st_vk_pick_device(-1, true, &err);
    for (int i = 0; i < n && i < 16; i++) {
        const st_vk_device_info *v = &d[i];
        printf("device %d: %s%s\n", v->index, v->name, i == pick ? "  (auto)" : "");
        printf("  type:      %s\n", v->type);
        printf("  vulkan:    %u.%u.%u%s%s\n", v->api_major, v->api_minor, v->api_patch, v->driver[0] ? ", driver " : "", v->driver);
        printf("  vram:      %.1f GiB\n", v->vram_bytes / 1073741824.0);
        printf("  subgroup:  %u%s\n", v->subgroup_size, v->subgroup_arith ? " (arithmetic: reductions use it)" : " (no arithmetic: shared-memory reductions)");
        printf("  shared:    %u KiB per workgroup\n", v->shared_mem / 1024);
        if (v->usable)
            printf("  features:  16/8-bit storage, push descriptors, timeline semaphores%s%s%s%s\n",
                   v->int_dot ? ", integer dot product" : "", v->coopmat ? ", cooperative matrices (prompts on tensor cores)" : "",
                   v->timestamps ? ", timestamps" : "", v->separate_transfer ? ", transfer queue" : "");
        else
            printf("  usable:    no: %s\n", v->why);
    }
    return 0;
#endif
}
