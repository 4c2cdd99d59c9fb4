/* strata_vk.h — the Vulkan backend's public entry points (gpu/), for the app
 * and the tests. core/ never includes this: the program calls
 * st_vk_register() once, and sessions whose st_session_params.backend asks
 * for Vulkan (or auto) then get it. See docs/VULKAN.md. */
#ifndef STRATA_VK_H
#define STRATA_VK_H

#include "error.h"
#include "strata.h"

#include <stdbool.h>
#include <stdint.h>

/* Registers the Vulkan backend with the engine (st_register_gpu_backend). */
void st_vk_register(void);

typedef struct st_vk_device_info {
    int index;                 /* what --device takes */
    char name[256];
    const char *type;          /* "discrete", "integrated", "virtual", "cpu", "other" */
    uint32_t api_major, api_minor, api_patch;
    char driver[128];
    uint64_t vram_bytes;       /* largest device-local heap */
    uint32_t subgroup_size;
    bool subgroup_arith;       /* subgroup arithmetic in compute shaders */
    bool int_dot;              /* VK_KHR_shader_integer_dot_product (4 x 8-bit packed dot products) */
    bool coopmat;              /* VK_NV_cooperative_matrix as the prompt kernels use it (tensor cores; st_vk_list_devices only) */
    bool separate_transfer;    /* a transfer-only queue family */
    bool timestamps;           /* timestamp queries on the compute queue */
    uint32_t shared_mem;       /* bytes of shared memory per workgroup */
    bool usable;               /* has everything the backend needs */
    char why[160];             /* if not usable: what is missing */
} st_vk_device_info;

/* Lists the Vulkan devices (at most cap into out); returns how many there
 * are, or -1 with err set when there is no Vulkan loader/driver at all. */
int st_vk_list_devices(st_vk_device_info *out, int cap, st_error *err);
/* The device a session would use: `device` >= 0 that one, -1 the preferred
 * (discrete, then integrated, virtual, cpu). Returns the index or -1. */
int st_vk_pick_device(int device, bool discrete_only, st_error *err);
/* The same for a discrete device only, run in a child process so that this
 * process loads no driver when there is none (vk_probe.c). */
int st_vk_probe_device(int device, st_error *err);

/* Errors reported by the validation layers so far, when they are enabled
 * (environment STRATA_VK_VALIDATION=1). */
uint64_t st_vk_validation_errors(void);

#endif
