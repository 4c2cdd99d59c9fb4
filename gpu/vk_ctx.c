/* vk_ctx.c — Vulkan device context: see vk_ctx.h and docs/VULKAN.md. */
#include "vk_ctx.h"

#include "vk_shaders.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_BYTES ((VkDeviceSize)256 << 20) /* device memory is taken in blocks of this (or one large request) */
/* The staging ring: uploads are cut into chunks of STAGING_SLOT bytes, and
 * the host copies chunk i + 1 into its slot while the transfer queue still
 * moves chunk i (one slot and a wait per chunk ran at memcpy speed + DMA
 * speed in turn). */
#define STAGING_SLOT ((VkDeviceSize)16 << 20)
#define STAGING_BYTES (STAGING_SLOT * VK_STAGING_SLOTS)
#define ALLOC_ALIGN ((VkDeviceSize)256)

static const char *const pipe_names[VKP_COUNT] = {
    "act", "kv_store", "attn",
    "matvec_f32", "matvec_f16", "matvec_q4_0", "matvec_q8_0",
    "matvec_q4_k", "matvec_q5_k", "matvec_q6_k",
    "bw_read",
    "matmul_f32", "matmul_f16", "matmul_q4_0", "matmul_q8_0",
    "matmul_q4_k", "matmul_q5_k", "matmul_q6_k",
    "matmul_s_f32", "matmul_s_f16", "matmul_s_q4_0", "matmul_s_q8_0",
    "matmul_s_q4_k", "matmul_s_q5_k", "matmul_s_q6_k",
    "matmul_cm_f32", "matmul_cm_f16", "matmul_cm_q4_0", "matmul_cm_q8_0",
    "matmul_cm_q4_k", "matmul_cm_q5_k", "matmul_cm_q6_k",
    "matvec_e1_f32", "matvec_e1_f16", "matvec_e1_q4_0", "matvec_e1_q8_0",
    "matvec_e1_q4_k", "matvec_e1_q5_k", "matvec_e1_q6_k",
    "matvec_p_f32", "matvec_p_f16", "matvec_p_q4_0", "matvec_p_q8_0",
    "matvec_p_q4_k", "matvec_p_q5_k", "matvec_p_q6_k",
    "matvec_pe1_f32", "matvec_pe1_f16", "matvec_pe1_q4_0", "matvec_pe1_q8_0",
    "matvec_pe1_q4_k", "matvec_pe1_q5_k", "matvec_pe1_q6_k",
    "act_w",
    "matmul_cms_f32", "matmul_cms_f16", "matmul_cms_q4_0", "matmul_cms_q8_0",
    "matmul_cms_q4_k", "matmul_cms_q5_k", "matmul_cms_q6_k",
    "attn_f", "attn_dec4", "attn_dec8", "attn_dec16", "attn_dec_f4", "attn_dec_f8", "attn_dec_f16",
};

const char *vk_pipe_name(vk_pipe_id id) { return id < VKP_COUNT ? pipe_names[id] : "?"; }

/* attn_dec's workgroup for head rows of up to maxv 16-byte vectors: 32 *
 * maxv, so that each invocation holds 4 vectors of a key row (H100, tg128:
 * llama2-7b Q4_K_M, heads of 128, 342-343 tok/s with 512 vs 335-337 with
 * 256 and 332-334 with 128; tinyllama Q8_0, heads of 64, 792-808 with 256
 * vs 788-801 with 512), at least a round (128), at most attn_dec_wg. */
uint32_t vk_attn_dec_wg(const st_vk_ctx *c, uint32_t maxv) {
    uint32_t w = 32 * maxv;
    if (w < 128) w = 128;
    if (w > c->attn_dec_wg) w = c->attn_dec_wg;
    return w;
}

/* The SPIR-V of a pipeline: its own name, except the small-tile matmuls
 * and the cooperative-matrix ones with small tiles (the same code with
 * other specialization constants) and the
 * mat-vec epilogue (the mat-vec's code with EPI set). */
static const char *pipe_spirv(vk_pipe_id id) {
    if (id >= VKP_MATMUL_S_F32 && id <= VKP_MATMUL_S_Q6_K) return pipe_names[id - VKP_MATMUL_S_F32 + VKP_MATMUL_F32];
    if (id >= VKP_MATVEC_E1_F32 && id <= VKP_MATVEC_PE1_Q6_K) return pipe_names[(id - VKP_MATVEC_E1_F32) % 7 + VKP_MATVEC_F32];
    if (id == VKP_ACT_W) return pipe_names[VKP_ACT];
    if (id == VKP_ATTN_F) return pipe_names[VKP_ATTN];
    if (id >= VKP_ATTN_D4 && id <= VKP_ATTN_DF16) return "attn_dec";
    if (id >= VKP_MATMUL_CMS_F32 && id <= VKP_MATMUL_CMS_Q6_K) return pipe_names[id - VKP_MATMUL_CMS_F32 + VKP_MATMUL_CM_F32];
    return pipe_names[id];
}

const char *vk_result_str(VkResult r) {
    switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    default: return "VkResult error";
    }
}

/* ------------------------------------------------------------ validation */

static _Atomic uint64_t g_validation_errors;

uint64_t vk_validation_errors(void) { return atomic_load(&g_validation_errors); }
uint64_t st_vk_validation_errors(void) { return vk_validation_errors(); }

static VKAPI_ATTR VkBool32 VKAPI_CALL debug_cb(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                               VkDebugUtilsMessageTypeFlagsEXT type,
                                               const VkDebugUtilsMessengerCallbackDataEXT *data, void *user) {
    (void)type;
    (void)user;
    if (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) atomic_fetch_add(&g_validation_errors, 1);
    if (sev & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT))
        fprintf(stderr, "vulkan validation %s: %s\n",
                (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) ? "error" : "warning",
                data && data->pMessage ? data->pMessage : "(no message)");
    return VK_FALSE;
}

static bool env_on(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static bool has_layer(const char *name) {
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0) return false;
    VkLayerProperties *p = calloc(n, sizeof *p);
    bool found = false;
    if (p && vkEnumerateInstanceLayerProperties(&n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            if (!strcmp(p[i].layerName, name)) found = true;
    free(p);
    return found;
}

/* An instance (Vulkan 1.2), with the validation layer and a messenger when
 * STRATA_VK_VALIDATION is set and the layer is installed. */
static st_status make_instance(VkInstance *inst, VkDebugUtilsMessengerEXT *msg, st_error *err) {
    *inst = VK_NULL_HANDLE;
    if (msg) *msg = VK_NULL_HANDLE;
    uint32_t api = 0;
    if (vkEnumerateInstanceVersion(&api) != VK_SUCCESS || api < VK_API_VERSION_1_2)
        return st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan: the loader offers Vulkan %u.%u, strata needs 1.2",
                            VK_API_VERSION_MAJOR(api), VK_API_VERSION_MINOR(api));
    bool validate = msg && env_on("STRATA_VK_VALIDATION") && has_layer("VK_LAYER_KHRONOS_validation");
    if (msg && env_on("STRATA_VK_VALIDATION") && !validate)
        fprintf(stderr, "strata: STRATA_VK_VALIDATION is set but VK_LAYER_KHRONOS_validation is not installed "
                        "(Debian: vulkan-validationlayers)\n");
    const char *layers[] = {"VK_LAYER_KHRONOS_validation"};
    const char *exts[] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME};
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "strata",
                             .pEngineName = "strata",
                             .apiVersion = VK_API_VERSION_1_2};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                               .pApplicationInfo = &app,
                               .enabledLayerCount = validate ? 1 : 0,
                               .ppEnabledLayerNames = layers,
                               .enabledExtensionCount = validate ? 1 : 0,
                               .ppEnabledExtensionNames = exts};
    VkResult r = vkCreateInstance(&ci, NULL, inst);
    if (r != VK_SUCCESS) {
        *inst = VK_NULL_HANDLE;
        return st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan: cannot create an instance (%s): no Vulkan driver?",
                            vk_result_str(r));
    }
    if (validate) {
        PFN_vkCreateDebugUtilsMessengerEXT f =
            (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(*inst, "vkCreateDebugUtilsMessengerEXT");
        VkDebugUtilsMessengerCreateInfoEXT mi = {
            .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
            .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT,
            .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
            .pfnUserCallback = debug_cb};
        if (f) f(*inst, &mi, NULL, msg);
    }
    return ST_OK;
}

static void destroy_instance(VkInstance inst, VkDebugUtilsMessengerEXT msg) {
    if (!inst) return;
    if (msg) {
        PFN_vkDestroyDebugUtilsMessengerEXT f =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(inst, "vkDestroyDebugUtilsMessengerEXT");
        if (f) f(inst, msg, NULL);
    }
    vkDestroyInstance(inst, NULL);
}

/* ------------------------------------------------------------ devices */

static const char *type_name(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
    }
}

static int type_rank(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
    default: return 4;
    }
}

static bool has_dev_ext(VkPhysicalDevice pd, const char *name) {
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS) return false;
    VkExtensionProperties *p = calloc(n ? n : 1, sizeof *p);
    bool found = false;
    if (p && vkEnumerateDeviceExtensionProperties(pd, NULL, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            if (!strcmp(p[i].extensionName, name)) found = true;
    free(p);
    return found;
}

/* Queue families: one with compute (preferring compute without graphics),
 * and a transfer-only one if there is. */
static bool pick_queues(VkPhysicalDevice pd, uint32_t *qc, uint32_t *qt, bool *sep, uint32_t *ts_bits) {
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, NULL);
    VkQueueFamilyProperties *q = calloc(n ? n : 1, sizeof *q);
    if (!q) return false;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, q);
    int c = -1, t = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (!(q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || q[i].queueCount == 0) continue;
        if (c < 0 || ((q[c].queueFlags & VK_QUEUE_GRAPHICS_BIT) && !(q[i].queueFlags & VK_QUEUE_GRAPHICS_BIT) &&
                      q[i].timestampValidBits > 0))
            c = (int)i;
    }
    for (uint32_t i = 0; i < n; i++)
        if ((int)i != c && q[i].queueCount > 0 && (q[i].queueFlags & VK_QUEUE_TRANSFER_BIT) &&
            !(q[i].queueFlags & (VK_QUEUE_COMPUTE_BIT | VK_QUEUE_GRAPHICS_BIT))) {
            t = (int)i;
            break;
        }
    if (c >= 0) {
        *qc = (uint32_t)c;
        *qt = t >= 0 ? (uint32_t)t : (uint32_t)c;
        *sep = t >= 0;
        *ts_bits = q[c].timestampValidBits;
    }
    free(q);
    return c >= 0;
}

#ifndef STRATA_VK_CM_EMULATE
static bool cm_probe(VkInstance inst, VkPhysicalDevice pd);
#endif

/* Fills info for pd; usable says whether the backend can run on it. */
static void describe(VkPhysicalDevice pd, int index, st_vk_device_info *o) {
    memset(o, 0, sizeof *o);
    o->index = index;
    VkPhysicalDeviceVulkan11Properties p11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES};
    VkPhysicalDeviceVulkan12Properties p12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &p11};
    VkPhysicalDeviceProperties base;
    vkGetPhysicalDeviceProperties(pd, &base);
    bool v12 = base.apiVersion >= VK_API_VERSION_1_2;
    if (v12) {
        p11.pNext = &p12;
        vkGetPhysicalDeviceProperties2(pd, &p2);
    } else {
        p2.properties = base;
    }
    const VkPhysicalDeviceProperties *p = &p2.properties;
    snprintf(o->name, sizeof o->name, "%s", p->deviceName);
    o->type = type_name(p->deviceType);
    o->api_major = VK_API_VERSION_MAJOR(p->apiVersion);
    o->api_minor = VK_API_VERSION_MINOR(p->apiVersion);
    o->api_patch = VK_API_VERSION_PATCH(p->apiVersion);
    if (v12) snprintf(o->driver, sizeof o->driver, "%.60s %.60s", p12.driverName, p12.driverInfo);
    o->shared_mem = p->limits.maxComputeSharedMemorySize;
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    for (uint32_t h = 0; h < mp.memoryHeapCount; h++)
        if ((mp.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) && mp.memoryHeaps[h].size > o->vram_bytes)
            o->vram_bytes = mp.memoryHeaps[h].size;
    if (!v12) {
        snprintf(o->why, sizeof o->why, "Vulkan %u.%u (needs 1.2)", o->api_major, o->api_minor);
        return;
    }
    o->subgroup_size = p11.subgroupSize;
    o->subgroup_arith = (p11.subgroupSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                        (p11.subgroupSupportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
    uint32_t qc, qt, tsb = 0;
    bool sep = false;
    if (!pick_queues(pd, &qc, &qt, &sep, &tsb)) {
        snprintf(o->why, sizeof o->why, "no compute queue");
        return;
    }
    o->separate_transfer = sep;
    o->timestamps = tsb > 0 && p->limits.timestampPeriod > 0;
    VkPhysicalDeviceShaderIntegerDotProductFeaturesKHR fdot = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES_KHR};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &f12};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11};
    bool has_dot = has_dev_ext(pd, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME);
    if (has_dot) f12.pNext = &fdot;
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    o->int_dot = has_dot && fdot.shaderIntegerDotProduct;
    const char *miss = !f11.storageBuffer16BitAccess ? "16-bit storage buffers"
                     : !f12.storageBuffer8BitAccess  ? "8-bit storage buffers"
                     : !f12.timelineSemaphore        ? "timeline semaphores"
                     : !has_dev_ext(pd, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME) ? VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME
                     : p->limits.maxComputeWorkGroupInvocations < 64 ? "workgroups of 64"
                     : NULL;
    if (miss) {
        snprintf(o->why, sizeof o->why, "no %s", miss);
        return;
    }
    o->usable = true;
}

int st_vk_list_devices(st_vk_device_info *out, int cap, st_error *err) {
    VkInstance inst;
    if (make_instance(&inst, NULL, err)) return -1;
    uint32_t n = 0;
    vkEnumeratePhysicalDevices(inst, &n, NULL);
    VkPhysicalDevice *pd = calloc(n ? n : 1, sizeof *pd);
    if (!pd) {
        destroy_instance(inst, VK_NULL_HANDLE);
        st_error_set(err, ST_ERR_NOMEM, "out of memory");
        return -1;
    }
    vkEnumeratePhysicalDevices(inst, &n, pd);
    for (uint32_t i = 0; i < n && (int)i < cap; i++) {
        describe(pd[i], (int)i, &out[i]);
#ifndef STRATA_VK_CM_EMULATE
        /* what a session would use for prompts (vk_ctx_open) */
        out[i].coopmat = out[i].usable && out[i].subgroup_arith && out[i].int_dot && cm_probe(inst, pd[i]);
#endif
    }
    free(pd);
    destroy_instance(inst, VK_NULL_HANDLE);
    return (int)n;
}

/* The best usable device among pd[0..n): by type, then by VRAM. */
static int choose(VkPhysicalDevice *pd, uint32_t n, int want, bool discrete_only, st_error *err) {
    if (n == 0) {
        st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan: no devices");
        return -1;
    }
    st_vk_device_info info;
    if (want >= 0) {
        if ((uint32_t)want >= n) {
            st_error_set(err, ST_ERR_ARG, "vulkan: no device %d (there are %u: see strata devices)", want, n);
            return -1;
        }
        describe(pd[want], want, &info);
        if (!info.usable) {
            st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan: device %d (%s) cannot run strata: %s", want, info.name, info.why);
            return -1;
        }
        return want;
    }
    int best = -1, best_rank = 99;
    uint64_t best_vram = 0;
    char why[300] = "";
    for (uint32_t i = 0; i < n; i++) {
        describe(pd[i], (int)i, &info);
        if (!info.usable) {
            snprintf(why, sizeof why, "device %u (%.100s): %.100s", i, info.name, info.why);
            continue;
        }
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(pd[i], &p);
        int rank = type_rank(p.deviceType);
        if (discrete_only && rank != 0) {
            snprintf(why, sizeof why, "device %u (%.100s) is a %s device, not a discrete GPU", i, info.name, info.type);
            continue;
        }
        if (best < 0 || rank < best_rank || (rank == best_rank && info.vram_bytes > best_vram)) {
            best = (int)i;
            best_rank = rank;
            best_vram = info.vram_bytes;
        }
    }
    if (best < 0) st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan: no usable %sdevice (%s)", discrete_only ? "discrete " : "", why);
    return best;
}

int st_vk_pick_device(int device, bool discrete_only, st_error *err) {
    VkInstance inst;
    if (make_instance(&inst, NULL, err)) return -1;
    uint32_t n = 0;
    vkEnumeratePhysicalDevices(inst, &n, NULL);
    VkPhysicalDevice *pd = calloc(n ? n : 1, sizeof *pd);
    int r = -1;
    if (pd) {
        vkEnumeratePhysicalDevices(inst, &n, pd);
        r = choose(pd, n, device, discrete_only, err);
    }
    free(pd);
    destroy_instance(inst, VK_NULL_HANDLE);
    return r;
}

/* ------------------------------------------------------------ memory */

static int find_mem_type(const VkPhysicalDeviceMemoryProperties *mp, uint32_t bits, VkMemoryPropertyFlags want,
                         VkMemoryPropertyFlags nice) {
    int fallback = -1;
    for (uint32_t i = 0; i < mp->memoryTypeCount; i++) {
        if (!(bits & (1u << i)) || (mp->memoryTypes[i].propertyFlags & want) != want) continue;
        if ((mp->memoryTypes[i].propertyFlags & nice) == nice) return (int)i;
        if (fallback < 0) fallback = (int)i;
    }
    return fallback;
}

static st_status make_buffer(st_vk_ctx *c, VkDeviceSize size, bool host, VkBuffer *buf, VkDeviceMemory *mem,
                             st_error *err) {
    uint32_t fams[2] = {c->qf_compute, c->qf_transfer};
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                             .size = size,
                             .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                      VK_BUFFER_USAGE_TRANSFER_DST_BIT | VK_BUFFER_USAGE_INDIRECT_BUFFER_BIT,
                             .sharingMode = c->separate_transfer ? VK_SHARING_MODE_CONCURRENT : VK_SHARING_MODE_EXCLUSIVE,
                             .queueFamilyIndexCount = c->separate_transfer ? 2 : 0,
                             .pQueueFamilyIndices = fams};
    VkResult r = vkCreateBuffer(c->dev, &bi, NULL, buf);
    if (r != VK_SUCCESS) return st_error_set(err, ST_ERR_NOMEM, "vulkan: cannot create a buffer of %.1f MiB (%s)", size / 1048576.0, vk_result_str(r));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(c->dev, *buf, &req);
    int mt = host ? find_mem_type(&c->memprops, req.memoryTypeBits,
                                  VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                                  VK_MEMORY_PROPERTY_HOST_CACHED_BIT)
                  : find_mem_type(&c->memprops, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
    if (mt < 0) {
        vkDestroyBuffer(c->dev, *buf, NULL);
        return st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan: no %s memory type for a storage buffer", host ? "host-visible" : "device-local");
    }
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size, .memoryTypeIndex = (uint32_t)mt};
    r = vkAllocateMemory(c->dev, &ai, NULL, mem);
    if (r != VK_SUCCESS) {
        vkDestroyBuffer(c->dev, *buf, NULL);
        if (host)
            return st_error_set(err, ST_ERR_NOMEM, "vulkan: cannot allocate %.1f MiB of host-visible memory (%s)", req.size / 1048576.0,
                                vk_result_str(r));
        return st_error_set(err, ST_ERR_NOMEM,
                            "vulkan: cannot allocate %.1f MiB of device memory (%s; %.1f of %.1f MiB in use by strata): "
                            "stream the layers with --vram-budget SIZE or --gpu-cache-layers N, or use --backend cpu",
                            req.size / 1048576.0, vk_result_str(r), (double)atomic_load(&c->allocated) / 1048576.0,
                            (double)c->vram_bytes / 1048576.0);
    }
    vkBindBufferMemory(c->dev, *buf, *mem, 0);
    return ST_OK;
}

void vk_queue_claim(st_vk_ctx *c) {
    pthread_mutex_lock(&c->mu_spec);
    if (c->spec_owner) {
        c->spec_release(c->spec_owner);
        c->spec_owner = NULL;
    }
}

void vk_queue_unclaim(st_vk_ctx *c) { pthread_mutex_unlock(&c->mu_spec); }

st_status vk_hbuf_new(st_vk_ctx *c, VkDeviceSize size, vk_hbuf *out, st_error *err) {
    memset(out, 0, sizeof *out);
    if (size == 0) size = 256;
    st_status rc = make_buffer(c, size, true, &out->buf, &out->mem, err);
    if (rc) return rc;
    VkResult r = vkMapMemory(c->dev, out->mem, 0, VK_WHOLE_SIZE, 0, &out->map);
    if (r != VK_SUCCESS) {
        vk_hbuf_free(c, out);
        return st_error_set(err, ST_ERR_NOMEM, "vulkan: cannot map host memory (%s)", vk_result_str(r));
    }
    out->size = size;
    return ST_OK;
}

void vk_hbuf_free(st_vk_ctx *c, vk_hbuf *b) {
    if (b->buf) vkDestroyBuffer(c->dev, b->buf, NULL);
    if (b->mem) vkFreeMemory(c->dev, b->mem, NULL);
    memset(b, 0, sizeof *b);
}

static bool block_take(vk_block *b, VkDeviceSize size, VkDeviceSize *off) {
    for (int i = 0; i < b->nfree; i++) {
        if (b->fs[i] < size) continue;
        *off = b->fo[i];
        b->fo[i] += size;
        b->fs[i] -= size;
        if (b->fs[i] == 0) {
            memmove(&b->fo[i], &b->fo[i + 1], (size_t)(b->nfree - i - 1) * sizeof *b->fo);
            memmove(&b->fs[i], &b->fs[i + 1], (size_t)(b->nfree - i - 1) * sizeof *b->fs);
            b->nfree--;
        }
        return true;
    }
    return false;
}

/* Returns [off, off + size) to the block's free list, merging neighbours. */
static bool block_give(vk_block *b, VkDeviceSize off, VkDeviceSize size) {
    int i = 0;
    while (i < b->nfree && b->fo[i] < off) i++;
    bool left = i > 0 && b->fo[i - 1] + b->fs[i - 1] == off;
    bool right = i < b->nfree && off + size == b->fo[i];
    if (left && right) {
        b->fs[i - 1] += size + b->fs[i];
        memmove(&b->fo[i], &b->fo[i + 1], (size_t)(b->nfree - i - 1) * sizeof *b->fo);
        memmove(&b->fs[i], &b->fs[i + 1], (size_t)(b->nfree - i - 1) * sizeof *b->fs);
        b->nfree--;
    } else if (left) {
        b->fs[i - 1] += size;
    } else if (right) {
        b->fo[i] = off;
        b->fs[i] += size;
    } else {
        if (b->nfree == b->capfree) {
            int nc = b->capfree ? 2 * b->capfree : 16;
            VkDeviceSize *no = realloc(b->fo, (size_t)nc * sizeof *no);
            if (!no) return false;
            b->fo = no;
            VkDeviceSize *ns = realloc(b->fs, (size_t)nc * sizeof *ns);
            if (!ns) return false;
            b->fs = ns;
            b->capfree = nc;
        }
        memmove(&b->fo[i + 1], &b->fo[i], (size_t)(b->nfree - i) * sizeof *b->fo);
        memmove(&b->fs[i + 1], &b->fs[i], (size_t)(b->nfree - i) * sizeof *b->fs);
        b->fo[i] = off;
        b->fs[i] = size;
        b->nfree++;
    }
    return true;
}

/* A new pool block of device memory; under STRATA_VK_VRAM_LIMIT, refused
 * as the driver refuses when the device is full (to test that path). */
static st_status device_block(st_vk_ctx *c, VkDeviceSize bs, vk_block *nb, st_error *err) {
    if (c->vram_limit) {
        VkDeviceSize held = 0;
        for (int i = 0; i < c->nblocks; i++) held += c->blocks[i].mem ? c->blocks[i].size : 0;
        if (held + bs > c->vram_limit)
            return st_error_set(err, ST_ERR_NOMEM,
                                "vulkan: cannot allocate %.1f MiB of device memory (STRATA_VK_VRAM_LIMIT %.1f MiB; %.1f MiB in use by strata): "
                                "stream the layers with --vram-budget SIZE or --gpu-cache-layers N, or use --backend cpu",
                                bs / 1048576.0, c->vram_limit / 1048576.0, held / 1048576.0);
    }
    return make_buffer(c, bs, false, &nb->buf, &nb->mem, err);
}

st_status vk_alloc_dev(st_vk_ctx *c, VkDeviceSize size, vk_alloc *out, st_error *err) {
    memset(out, 0, sizeof *out);
    out->block = -1;
    VkDeviceSize align = c->ssbo_align > ALLOC_ALIGN ? c->ssbo_align : ALLOC_ALIGN;
    VkDeviceSize need = (size + align - 1) / align * align;
    if (need == 0) need = align;
    pthread_mutex_lock(&c->mu_alloc);
    for (int i = 0; i < c->nblocks; i++) {
        VkDeviceSize off;
        if (c->blocks[i].mem && block_take(&c->blocks[i], need, &off)) {
            *out = (vk_alloc){c->blocks[i].buf, off, need, i};
            pthread_mutex_unlock(&c->mu_alloc);
            atomic_fetch_add(&c->allocated, need);
            return ST_OK;
        }
    }
    VkDeviceSize bs = need > BLOCK_BYTES ? need : BLOCK_BYTES;
    vk_block nb = {0};
    nb.size = bs;
    st_status rc = device_block(c, bs, &nb, err);
    if (rc && bs > need) { /* a smaller block may still fit */
        nb.size = bs = need;
        rc = device_block(c, bs, &nb, err);
    }
    if (!rc) {
        vk_block *blocks = realloc(c->blocks, (size_t)(c->nblocks + 1) * sizeof *blocks);
        if (!blocks) rc = st_error_set(err, ST_ERR_NOMEM, "out of memory");
        else c->blocks = blocks;
    }
    if (!rc && !block_give(&nb, 0, bs)) rc = st_error_set(err, ST_ERR_NOMEM, "out of memory");
    if (rc) {
        if (nb.buf) vkDestroyBuffer(c->dev, nb.buf, NULL);
        if (nb.mem) vkFreeMemory(c->dev, nb.mem, NULL);
        free(nb.fo);
        free(nb.fs);
        pthread_mutex_unlock(&c->mu_alloc);
        return rc;
    }
    int bi = c->nblocks++;
    c->blocks[bi] = nb;
    VkDeviceSize off = 0;
    block_take(&c->blocks[bi], need, &off);
    *out = (vk_alloc){nb.buf, off, need, bi};
    pthread_mutex_unlock(&c->mu_alloc);
    atomic_fetch_add(&c->allocated, need);
    return ST_OK;
}

void vk_free_dev(st_vk_ctx *c, vk_alloc *a) {
    if (!a || a->block < 0 || !a->buf) return;
    pthread_mutex_lock(&c->mu_alloc);
    block_give(&c->blocks[a->block], a->off, a->size);
    pthread_mutex_unlock(&c->mu_alloc);
    atomic_fetch_sub(&c->allocated, a->size);
    memset(a, 0, sizeof *a);
    a->block = -1;
}

vk_bind vk_bind_range(const st_vk_ctx *c, const vk_alloc *a, VkDeviceSize off, VkDeviceSize n, uint32_t *skip) {
    VkDeviceSize abs = a->off + off;
    VkDeviceSize base = abs / c->ssbo_align * c->ssbo_align;
    *skip = (uint32_t)(abs - base);
    VkDeviceSize range = abs - base + n;
    range = (range + 3) & ~(VkDeviceSize)3;
    if (base + range > a->off + a->size) range = a->off + a->size - base;
    vk_bind b = {a->buf, base, range};
    return b;
}

/* ------------------------------------------------------------ uploads */

static st_status vkcheck(VkResult r, const char *what, st_error *err) {
    if (r == VK_SUCCESS) return ST_OK;
    return st_error_set(err, r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY ? ST_ERR_NOMEM : ST_ERR_INTERNAL,
                        "vulkan: %s failed (%s)", what, vk_result_str(r));
}

/* Claims a staging slot no other thread is filling; waits for its last
 * copy to land (its fence) before handing it out. */
static st_status ring_claim(st_vk_ctx *c, int *out, st_error *err) {
    pthread_mutex_lock(&c->mu_up);
    int sl = -1;
    while (sl < 0) {
        for (int i = 0; i < VK_STAGING_SLOTS && sl < 0; i++) {
            int j = (c->up_next + i) % VK_STAGING_SLOTS;
            if (!c->up_filling[j]) sl = j;
        }
        if (sl < 0) pthread_cond_wait(&c->up_cv, &c->mu_up);
    }
    c->up_next = (sl + 1) % VK_STAGING_SLOTS;
    c->up_filling[sl] = true;
    bool busy = c->up_busy[sl];
    pthread_mutex_unlock(&c->mu_up);
    *out = sl;
    if (!busy) return ST_OK;
    return vkcheck(vkWaitForFences(c->dev, 1, &c->up_fence[sl], VK_TRUE, UINT64_MAX), "vkWaitForFences (upload)", err);
}

/* Records and submits, on command buffer cb and fence, a copy of k bytes
 * from src at soff to dst at doff, signalling the next upload value. Under
 * mu_up (the timeline's values follow the submission order). `ordered`: the
 * copy starts after every copy submitted before it on the queue has
 * written (a barrier), so that copies into the same bytes land in order. */
static st_status submit_copy_on(st_vk_ctx *c, VkCommandBuffer cb, VkFence fence, bool ordered, VkBuffer src, VkDeviceSize soff,
                                const vk_alloc *dst, VkDeviceSize doff, size_t k, VkSemaphore wait_sem, uint64_t wait_value,
                                st_error *err) {
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    st_status rc = vkcheck(vkResetCommandBuffer(cb, 0), "vkResetCommandBuffer", err);
    if (!rc) rc = vkcheck(vkBeginCommandBuffer(cb, &bi), "vkBeginCommandBuffer", err);
    if (rc) return rc;
    if (ordered) {
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                              .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT};
        vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    }
    VkBufferCopy cp = {soff, dst->off + doff, k};
    vkCmdCopyBuffer(cb, src, dst->buf, 1, &cp);
    if ((rc = vkcheck(vkEndCommandBuffer(cb), "vkEndCommandBuffer", err))) return rc;
    uint64_t sig = atomic_load(&c->up_value) + 1;
    bool wait = wait_sem != VK_NULL_HANDLE;
    VkPipelineStageFlags stage = VK_PIPELINE_STAGE_ALL_COMMANDS_BIT;
    VkTimelineSemaphoreSubmitInfo ts = {.sType = VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO,
                                        .waitSemaphoreValueCount = wait ? 1 : 0,
                                        .pWaitSemaphoreValues = &wait_value,
                                        .signalSemaphoreValueCount = 1,
                                        .pSignalSemaphoreValues = &sig};
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                       .pNext = &ts,
                       .waitSemaphoreCount = wait ? 1 : 0,
                       .pWaitSemaphores = &wait_sem,
                       .pWaitDstStageMask = &stage,
                       .commandBufferCount = 1,
                       .pCommandBuffers = &cb,
                       .signalSemaphoreCount = 1,
                       .pSignalSemaphores = &c->up_sem};
    vkResetFences(c->dev, 1, &fence);
    pthread_mutex_t *qm = c->separate_transfer ? &c->mu_qt : &c->mu_qc;
    if (!c->separate_transfer) vk_queue_claim(c); /* the compute queue: a pass queued ahead would hold the copy back */
    pthread_mutex_lock(qm);
    VkResult r = vkQueueSubmit(c->q_transfer, 1, &si, fence);
    pthread_mutex_unlock(qm);
    if (!c->separate_transfer) vk_queue_unclaim(c);
    if ((rc = vkcheck(r, "vkQueueSubmit (upload)", err))) return rc;
    atomic_store(&c->up_value, sig);
    return ST_OK;
}

/* The same on staging slot sl's command buffer and fence. */
static st_status submit_copy(st_vk_ctx *c, int sl, VkBuffer src, VkDeviceSize soff, const vk_alloc *dst, VkDeviceSize doff,
                             size_t k, VkSemaphore wait_sem, uint64_t wait_value, st_error *err) {
    c->up_busy[sl] = false;
    st_status rc = submit_copy_on(c, c->up_cb[sl], c->up_fence[sl], false, src, soff, dst, doff, k, wait_sem, wait_value, err);
    if (!rc) c->up_busy[sl] = true;
    return rc;
}

static void ring_release(st_vk_ctx *c, int sl) {
    pthread_mutex_lock(&c->mu_up);
    c->up_filling[sl] = false;
    pthread_cond_signal(&c->up_cv);
    pthread_mutex_unlock(&c->mu_up);
}

st_status vk_upload(st_vk_ctx *c, const vk_alloc *dst, VkDeviceSize off, const void *src, size_t n,
                    VkSemaphore wait_sem, uint64_t wait_value, st_error *err) {
    if (off + n > dst->size)
        return st_error_set(err, ST_ERR_ARG, "vulkan: upload of %zu bytes at offset %" PRIu64 " overruns a buffer of %" PRIu64,
                            n, (uint64_t)off, (uint64_t)dst->size);
    st_status rc = ST_OK;
    for (size_t done = 0; done < n && !rc; done += (size_t)STAGING_SLOT) {
        size_t k = n - done < STAGING_SLOT ? n - done : (size_t)STAGING_SLOT;
        int sl;
        rc = ring_claim(c, &sl, err);
        VkDeviceSize so = (VkDeviceSize)sl * STAGING_SLOT;
        /* the host copies run outside the lock: several prefetch threads fill their slots at once */
        if (!rc) memcpy((uint8_t *)c->staging.map + so, (const uint8_t *)src + done, k);
        pthread_mutex_lock(&c->mu_up);
        if (!rc) rc = submit_copy(c, sl, c->staging.buf, so, dst, off + done, k, wait_sem, wait_value, err);
        c->up_filling[sl] = false;
        pthread_cond_signal(&c->up_cv);
        pthread_mutex_unlock(&c->mu_up);
    }
    /* No wait for the copies to land: src was copied into the ring already,
     * and every compute submission waits on the GPU for the uploads made
     * before it (up_sem at up_value). */
    return rc;
}

st_status vk_upload_pinned(st_vk_ctx *c, const vk_alloc *dst, VkDeviceSize off, VkBuffer src, VkDeviceSize src_off, size_t n,
                           VkSemaphore wait_sem, uint64_t wait_value, st_error *err) {
    if (off + n > dst->size)
        return st_error_set(err, ST_ERR_ARG, "vulkan: upload of %zu bytes at offset %" PRIu64 " overruns a buffer of %" PRIu64,
                            n, (uint64_t)off, (uint64_t)dst->size);
    int sl;
    st_status rc = ring_claim(c, &sl, err);
    pthread_mutex_lock(&c->mu_up);
    if (!rc) rc = submit_copy(c, sl, src, src_off, dst, off, n, wait_sem, wait_value, err);
    pthread_mutex_unlock(&c->mu_up);
    /* the caller reuses src on return: wait for the DMA (the slot is still ours) */
    if (!rc) rc = vkcheck(vkWaitForFences(c->dev, 1, &c->up_fence[sl], VK_TRUE, UINT64_MAX), "vkWaitForFences (upload)", err);
    pthread_mutex_lock(&c->mu_up);
    if (!rc) c->up_busy[sl] = false;
    pthread_mutex_unlock(&c->mu_up);
    ring_release(c, sl);
    return rc;
}

st_status vk_upload_pinned_async(st_vk_ctx *c, VkCommandBuffer cb, VkFence fence, const vk_alloc *dst, VkDeviceSize off,
                                 VkBuffer src, VkDeviceSize src_off, size_t n, VkSemaphore wait_sem, uint64_t wait_value,
                                 st_error *err) {
    if (off + n > dst->size)
        return st_error_set(err, ST_ERR_ARG, "vulkan: upload of %zu bytes at offset %" PRIu64 " overruns a buffer of %" PRIu64,
                            n, (uint64_t)off, (uint64_t)dst->size);
    pthread_mutex_lock(&c->mu_up);
    /* Ordered: a layer whose copies are still in flight can be evicted before
     * any kernel read it (its slot's last_use is older than them), and the
     * next layer's copies into the slot must not overtake them. */
    st_status rc = submit_copy_on(c, cb, fence, true, src, src_off, dst, off, n, wait_sem, wait_value, err);
    pthread_mutex_unlock(&c->mu_up);
    return rc;
}

/* STRATA_VK_PIPE_STATS=1: one line per pipeline, the driver's statistics
 * of its executable (NVIDIA: register count, shared memory, ...) */
static void pipe_stats_print(st_vk_ctx *c, VkPipeline pipe, const char *name) {
    PFN_vkGetPipelineExecutableStatisticsKHR get =
        (PFN_vkGetPipelineExecutableStatisticsKHR)vkGetDeviceProcAddr(c->dev, "vkGetPipelineExecutableStatisticsKHR");
    if (!get) return;
    VkPipelineExecutableInfoKHR ei = {.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR, .pipeline = pipe, .executableIndex = 0};
    VkPipelineExecutableStatisticKHR st[32];
    uint32_t n = 32;
    for (uint32_t i = 0; i < n; i++) st[i] = (VkPipelineExecutableStatisticKHR){.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR};
    VkResult r = get(c->dev, &ei, &n, st);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) return;
    fprintf(stderr, "vulkan pipeline %s:", name);
    for (uint32_t i = 0; i < n; i++) {
        switch (st[i].format) {
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR: fprintf(stderr, " %s=%s", st[i].name, st[i].value.b32 ? "yes" : "no"); break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR: fprintf(stderr, " %s=%lld", st[i].name, (long long)st[i].value.i64); break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR:
            fprintf(stderr, " %s=%llu", st[i].name, (unsigned long long)st[i].value.u64);
            break;
        default: fprintf(stderr, " %s=%g", st[i].name, st[i].value.f64); break;
        }
        fputc(i + 1 < n ? ',' : '\n', stderr);
    }
    if (!n) fputc('\n', stderr);
}

/* ------------------------------------------------------------ pipelines */

/* Workgroups of 256 helped Q8_0, Q4_K and Q6_K on the H200 (decode 1-3%:
 * tinyllama Q4_K_M 692 vs 674 tok/s, llama2-7b Q4_K_M 307 vs 302, Q8_0 216
 * vs 210) and hurt F16 (4096 x 4096: 33 vs 13 us) and Q5_K (4096 x 11008:
 * 37.5 vs 19.5 us): those keep wg. */
bool vk_mv_wide(int k) { return k == 3 || k == 4 || k == 6; }

/* A rows-per-group setting from the environment (1, 2 or 4) into *out;
 * whether there was one. */
static bool env_nr(const char *name, uint32_t *out) {
    const char *e = getenv(name);
    if (!e || (strcmp(e, "1") && strcmp(e, "2") && strcmp(e, "4"))) return false;
    *out = (uint32_t)(*e - '0');
    return true;
}

uint32_t vk_mv_nr(const st_vk_ctx *c, int k) { return k >= 0 && k < 7 ? c->mv_nr_k[k] : c->mv_nr; }

VkPipeline vk_pipeline(st_vk_ctx *c, vk_pipe_id id, st_error *err) {
    pthread_mutex_lock(&c->mu_pipe);
    if (c->pipes[id]) {
        VkPipeline p = c->pipes[id];
        pthread_mutex_unlock(&c->mu_pipe);
        return p;
    }
    char name[64];
    snprintf(name, sizeof name, "%s%s", pipe_spirv(id), c->subgroup_arith ? "" : "_nosg");
    const st_vk_spirv *sp = NULL;
    for (int i = 0; i < st_vk_n_shaders; i++)
        if (!strcmp(st_vk_shaders[i].name, name)) sp = &st_vk_shaders[i];
    VkPipeline pipe = VK_NULL_HANDLE;
    if (!sp) {
        st_error_set(err, ST_ERR_INTERNAL, "vulkan: shader %s is not embedded", name);
        goto out;
    }
    VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = sp->size, .pCode = sp->code};
    VkShaderModule mod;
    VkResult r = vkCreateShaderModule(c->dev, &mi, NULL, &mod);
    if (r != VK_SUCCESS) {
        st_error_set(err, ST_ERR_INTERNAL, "vulkan: shader %s: vkCreateShaderModule failed (%s)", name, vk_result_str(r));
        goto out;
    }
    /* 0-2: every shader (common.glsl); 3-8: matmul.comp's tiles */
    const vk_mm_cfg *mm = &c->mm[id >= VKP_MATMUL_CMS_F32                            ? VK_MM_CM_S
                                 : id >= VKP_MATMUL_CM_F32                           ? VK_MM_CM
                                 : id >= VKP_MATMUL_S_F32 && id <= VKP_MATMUL_S_Q6_K ? VK_MM_SMALL
                                                                                      : VK_MM_LARGE];
    /* 9: matvec.comp's epilogue, 10: its rows per group, 11: its prologue's
     * capacity; act_w runs act with the mat-vec's workgroup size (what the
     * prologue computes, bit for bit), act with the default one (faster
     * where act stays: llama2-7b decode) */
    bool e1 = (id >= VKP_MATVEC_E1_F32 && id <= VKP_MATVEC_E1_Q6_K) || (id >= VKP_MATVEC_PE1_F32 && id <= VKP_MATVEC_PE1_Q6_K);
    bool pro = id >= VKP_MATVEC_P_F32 && id <= VKP_MATVEC_PE1_Q6_K;
    int mvk = e1 || pro ? (int)(id - VKP_MATVEC_E1_F32) % 7 : id >= VKP_MATVEC_F32 && id <= VKP_MATVEC_Q6_K ? (int)(id - VKP_MATVEC_F32) : -1;
    bool mv = (mvk >= 0 && vk_mv_wide(mvk)) || id == VKP_ACT_W;
    /* 12: attn.comp's and attn_dec.comp's FRESH, 13: attn_dec's MAXV */
    bool attn_d = id >= VKP_ATTN_D4 && id <= VKP_ATTN_DF16;
    bool fresh = id == VKP_ATTN_F || (id >= VKP_ATTN_DF4 && id <= VKP_ATTN_DF16);
    uint32_t maxv = attn_d ? 4u << ((id - VKP_ATTN_D4) % 3) : 16u;
    struct { uint32_t wg, sg; VkBool32 use_sg; uint32_t mm_wg, bm, bn, bk, tm, tn, epi, nr, pro_n; VkBool32 fresh; uint32_t maxv; } spec = {
        mv ? c->mv_wg : attn_d ? vk_attn_dec_wg(c, maxv) : c->wg, c->subgroup_size, c->subgroup_arith ? VK_TRUE : VK_FALSE, mm->wg, mm->bm, mm->bn, mm->bk, mm->tm, mm->tn,
        e1 ? 1u : 0u, vk_mv_nr(c, mvk), pro ? c->pro_n : 64u, fresh ? VK_TRUE : VK_FALSE, maxv};
    VkSpecializationMapEntry me[14];
    for (uint32_t i = 0; i < 14; i++) me[i] = (VkSpecializationMapEntry){i, 4 * i, 4};
    VkSpecializationInfo si = {14, me, sizeof spec, &spec};
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .flags = c->pipe_stats ? VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR : 0,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = mod,
                  .pName = "main",
                  .pSpecializationInfo = &si},
        .layout = c->layout};
    r = vkCreateComputePipelines(c->dev, VK_NULL_HANDLE, 1, &ci, NULL, &pipe);
    vkDestroyShaderModule(c->dev, mod, NULL);
    if (r != VK_SUCCESS) {
        pipe = VK_NULL_HANDLE;
        st_error_set(err, ST_ERR_INTERNAL, "vulkan: pipeline %s: vkCreateComputePipelines failed (%s)", name, vk_result_str(r));
        goto out;
    }
    c->pipes[id] = pipe;
    if (c->pipe_stats) pipe_stats_print(c, pipe, name);
out:
    pthread_mutex_unlock(&c->mu_pipe);
    return pipe;
}

void vk_barrier(VkCommandBuffer cb) {
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
}

/* ------------------------------------------------------------ profiling */

static void prof_mark(st_vk_ctx *c, VkCommandBuffer cb, int id) {
    if (c->prof_n >= VK_PROF_MAX) return;
    if (c->prof_n == 0) vkCmdResetQueryPool(cb, c->prof_qp, 0, VK_PROF_MAX);
    c->prof_id[c->prof_n] = (int16_t)id;
    vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, c->prof_qp, c->prof_n++);
}

void vk_prof_start(st_vk_ctx *c, VkCommandBuffer cb) {
    if (c->prof) prof_mark(c, cb, -1);
}

void vk_prof_collect(st_vk_ctx *c) {
    if (!c->prof || c->prof_n == 0) return;
    static uint64_t t[VK_PROF_MAX];
    VkResult r = vkGetQueryPoolResults(c->dev, c->prof_qp, 0, c->prof_n, sizeof t, t, sizeof t[0],
                                       VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
    if (r == VK_SUCCESS)
        for (uint32_t i = 1; i < c->prof_n; i++) {
            int id = c->prof_id[i];
            if (id < 0 || t[i] < t[i - 1]) continue;
            c->prof_ns[id] += (double)(t[i] - t[i - 1]) * c->ts_period;
            c->prof_cnt[id]++;
        }
    c->prof_n = 0;
}

static void prof_report(st_vk_ctx *c) {
    double total = 0;
    for (int i = 0; i <= VKP_COUNT; i++) total += c->prof_ns[i];
    if (total <= 0) return;
    fprintf(stderr, "vulkan profile (GPU time per pipeline, timestamps after each dispatch):\n");
    for (int i = 0; i <= VKP_COUNT; i++)
        if (c->prof_cnt[i])
            fprintf(stderr, "  %-12s %10.3f ms %5.1f%%  %8llu dispatches  %8.2f us each\n", i < VKP_COUNT ? pipe_names[i] : "other", c->prof_ns[i] / 1e6,
                    100.0 * c->prof_ns[i] / total, (unsigned long long)c->prof_cnt[i], c->prof_ns[i] / 1e3 / (double)c->prof_cnt[i]);
    fprintf(stderr, "  %-12s %10.3f ms\n", "total", total / 1e6);
}

/* Binds the pipeline, its buffers (push descriptors) and push constants. */
static void bind_for(st_vk_ctx *c, VkCommandBuffer cb, VkPipeline pipe, const vk_bind *b, int nb, const void *push,
                     uint32_t push_bytes) {
    VkDescriptorBufferInfo bi[VK_MAX_BINDINGS];
    VkWriteDescriptorSet w[VK_MAX_BINDINGS];
    for (int i = 0; i < nb; i++) {
        bi[i] = (VkDescriptorBufferInfo){b[i].buf, b[i].off, b[i].range};
        w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                      .dstBinding = (uint32_t)i,
                                      .descriptorCount = 1,
                                      .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                      .pBufferInfo = &bi[i]};
    }
    vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    c->push_desc(cb, VK_PIPELINE_BIND_POINT_COMPUTE, c->layout, 0, (uint32_t)nb, w);
    uint8_t pc[VK_PUSH_BYTES] = {0};
    memcpy(pc, push, push_bytes);
    vkCmdPushConstants(cb, c->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, VK_PUSH_BYTES, pc);
}

static void prof_after(st_vk_ctx *c, VkCommandBuffer cb, VkPipeline pipe) {
    if (c->prof) {
        int id = VKP_COUNT;
        for (int i = 0; i < VKP_COUNT; i++)
            if (c->pipes[i] == pipe) id = i;
        prof_mark(c, cb, id);
    }
}

void vk_dispatch_nb(st_vk_ctx *c, VkCommandBuffer cb, VkPipeline pipe, const vk_bind *b, int nb, const void *push,
                    uint32_t push_bytes, uint32_t gx, uint32_t gy, uint32_t gz) {
    bind_for(c, cb, pipe, b, nb, push, push_bytes);
    vkCmdDispatch(cb, gx, gy, gz);
    prof_after(c, cb, pipe);
}

void vk_dispatch_indirect(st_vk_ctx *c, VkCommandBuffer cb, VkPipeline pipe, const vk_bind *b, int nb, const void *push,
                          uint32_t push_bytes, VkBuffer args, VkDeviceSize args_off) {
    bind_for(c, cb, pipe, b, nb, push, push_bytes);
    vkCmdDispatchIndirect(cb, args, args_off);
    prof_after(c, cb, pipe);
    vk_barrier_compute(cb);
}

void vk_barrier_compute(VkCommandBuffer cb) {
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
}

void vk_dispatch(st_vk_ctx *c, VkCommandBuffer cb, VkPipeline pipe, const vk_bind *b, int nb, const void *push,
                 uint32_t push_bytes, uint32_t gx, uint32_t gy, uint32_t gz) {
    vk_dispatch_nb(c, cb, pipe, b, nb, push, push_bytes, gx, gy, gz);
    vk_barrier_compute(cb);
}

void vk_grid(const st_vk_ctx *c, uint32_t n, uint32_t *gx, uint32_t *gy) {
    if (n == 0) n = 1;
    uint32_t mx = c->max_groups_x;
    *gx = n < mx ? n : mx;
    *gy = (n + *gx - 1) / *gx;
}

/* ------------------------------------------------------------ matmul tiles */

/* A tile shape that fits the device: as asked where it fits; otherwise more
 * rows/tokens per invocation (up to 8) or smaller tiles until the
 * workgroup is within the invocation limits, and a shorter k step (down to
 * 8), then smaller tiles, until the two shared-memory tiles fit. */
static vk_mm_cfg mm_fit(const VkPhysicalDeviceLimits *l, uint32_t bm, uint32_t bn, uint32_t bk, uint32_t tm, uint32_t tn) {
    vk_mm_cfg m = {0};
    uint32_t maxwg = l->maxComputeWorkGroupInvocations < l->maxComputeWorkGroupSize[0] ? l->maxComputeWorkGroupInvocations
                                                                                          : l->maxComputeWorkGroupSize[0];
    for (int guard = 0; guard < 64; guard++) {
        if (!tm || !tn || tm % 4 || tn % 4 || bm % tm || bn % tn || !bm || !bn || !(bk == 8 || bk == 16 || bk == 32)) return m;
        uint32_t wg = (bm / tm) * (bn / tn);
        uint64_t shared = 4ull * bk * (bm + bn);
        if (wg > maxwg) {
            if (tm < 8) tm *= 2;
            else if (tn < 8) tn *= 2;
            else if (bm >= bn && bm > 4 * tm) bm /= 2;
            else if (bn > tn) bn /= 2;
            else return m;
        } else if (shared > l->maxComputeSharedMemorySize) {
            if (bk > 8) bk /= 2;
            else if (bm >= bn && bm > 4 * tm) bm /= 2;
            else if (bn > tn) bn /= 2;
            else return m;
        } else {
            m = (vk_mm_cfg){wg, bm, bn, bk, tm, tn, true};
            return m;
        }
    }
    return m;
}

/* The cooperative-matrix tiles: bm x bn per workgroup, wm x wn (multiples
 * of 16) per subgroup, bk 16, 32, 64 or 128; the workgroup and the shared
 * memory (two F16 tiles with rows padded by 8 halves, large enough to stage
 * 1 KiB of F32 results per subgroup) within the device's limits, else not
 * used. */
static vk_mm_cfg cm_fit(const st_vk_ctx *c, uint32_t bm, uint32_t bn, uint32_t bk, uint32_t wm, uint32_t wn) {
    vk_mm_cfg m = {0};
    const VkPhysicalDeviceLimits *l = &c->props.limits;
    if (!wm || !wn || wm % 16 || wn % 16 || bm % wm || bn % wn || !(bk == 16 || bk == 32 || bk == 64 || bk == 128)) return m;
    uint64_t subs = (uint64_t)(bm / wm) * (bn / wn), wg = subs * c->subgroup_size;
    uint64_t shared = 2ull * (bk + 8) * (bm + bn);   /* the tiles, which also stage the results: 1 KiB a subgroup */
    if (1024ull * subs > shared) return m;
    if (wg > l->maxComputeWorkGroupInvocations || wg > l->maxComputeWorkGroupSize[0] || shared > l->maxComputeSharedMemorySize)
        return m;
    return (vk_mm_cfg){(uint32_t)wg, bm, bn, bk, wm, wn, true};
}

#ifndef STRATA_VK_CM_EMULATE
/* Whether the device offers VK_NV_cooperative_matrix with 16x16x16 F16 x
 * F16 + F32 -> F32 at subgroup scope in compute shaders, and the features
 * matmul_cm.comp needs (shaderFloat16, vulkanMemoryModel). */
static bool cm_probe(VkInstance inst, VkPhysicalDevice pd) {
    if (!has_dev_ext(pd, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME)) return false;
    VkPhysicalDeviceCooperativeMatrixFeaturesNV cf = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, .pNext = &cf};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f12};
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    if (!cf.cooperativeMatrix || !f12.shaderFloat16 || !f12.vulkanMemoryModel) return false;
    VkPhysicalDeviceCooperativeMatrixPropertiesNV cp = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_NV};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &cp};
    vkGetPhysicalDeviceProperties2(pd, &p2);
    if (!(cp.cooperativeMatrixSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT)) return false;
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV get =
        (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV)vkGetInstanceProcAddr(inst, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV");
    uint32_t n = 0;
    if (!get || get(pd, &n, NULL) != VK_SUCCESS || n == 0) return false;
    VkCooperativeMatrixPropertiesNV *props = calloc(n, sizeof *props);
    if (!props) return false;
    for (uint32_t i = 0; i < n; i++) props[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
    bool ok = false;
    if (get(pd, &n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) {
            const VkCooperativeMatrixPropertiesNV *q = &props[i];
            if (q->MSize == 16 && q->NSize == 16 && q->KSize == 16 && q->AType == VK_COMPONENT_TYPE_FLOAT16_NV &&
                q->BType == VK_COMPONENT_TYPE_FLOAT16_NV && q->CType == VK_COMPONENT_TYPE_FLOAT32_NV &&
                q->DType == VK_COMPONENT_TYPE_FLOAT32_NV && q->scope == VK_SCOPE_SUBGROUP_NV)
                ok = true;
        }
    free(props);
    return ok;
}
#endif

/* The matmul tiles and threshold: defaults, or STRATA_VK_MM_TILES =
 * "BMxBNxBKxTMxTN[,BMxBNxBKxTMxTN]" (large[,small], for tuning),
 * STRATA_VK_MM_CM_TILES = "BMxBNxBKxWMxWN" (cooperative matrices) and
 * STRATA_VK_MATMUL = the smallest batch that uses matmul (0: never). */
static void mm_setup(st_vk_ctx *c) {
    static const uint32_t def[2][5] = {{64, 128, 16, 8, 8}, {64, 32, 32, 4, 4}}; /* large, small */
    uint32_t t[2][5];
    memcpy(t, def, sizeof t);
    const char *e = getenv("STRATA_VK_MM_TILES");
    if (e && *e) {
        int n = sscanf(e, "%ux%ux%ux%ux%u,%ux%ux%ux%ux%u", &t[0][0], &t[0][1], &t[0][2], &t[0][3], &t[0][4], &t[1][0], &t[1][1],
                       &t[1][2], &t[1][3], &t[1][4]);
        if (n != 5 && n != 10) {
            fprintf(stderr, "strata: STRATA_VK_MM_TILES=%s: expected BMxBNxBKxTMxTN[,BMxBNxBKxTMxTN]; using the defaults\n", e);
            memcpy(t, def, sizeof t);
        } else if (n == 5) {
            memcpy(t[1], def[1], sizeof t[1]);
        }
    }
    for (int v = VK_MM_LARGE; v <= VK_MM_SMALL; v++) {
        c->mm[v] = mm_fit(&c->props.limits, t[v][0], t[v][1], t[v][2], t[v][3], t[v][4]);
        if (!c->mm[v].ok) fprintf(stderr, "strata: vulkan: %s matmul tiles %ux%ux%ux%ux%u do not fit this device: not used\n",
                                  v == VK_MM_LARGE ? "large" : "small", t[v][0], t[v][1], t[v][2], t[v][3], t[v][4]);
    }
    if (c->coopmat) {
        /* large: the first of these that fits (64 x 128 needs 512
         * invocations and 27 KiB); small (products of at most 256 rows:
         * tinyllama's K and V, 28 vs 61 us on the H100) */
        static const uint32_t cdef[3][5] = {{64, 128, 64, 32, 16}, {64, 64, 64, 32, 16}, {32, 32, 64, 16, 16}};
        uint32_t m[2][5];
        memcpy(m[0], cdef[0], sizeof m[0]);
        memcpy(m[1], cdef[2], sizeof m[1]);
        e = getenv("STRATA_VK_MM_CM_TILES");
        int n = e && *e ? sscanf(e, "%ux%ux%ux%ux%u,%ux%ux%ux%ux%u", &m[0][0], &m[0][1], &m[0][2], &m[0][3], &m[0][4], &m[1][0], &m[1][1],
                                 &m[1][2], &m[1][3], &m[1][4])
                        : 0;
        if (e && *e && n != 5 && n != 10) {
            fprintf(stderr, "strata: STRATA_VK_MM_CM_TILES=%s: expected BMxBNxBKxWMxWN[,BMxBNxBKxWMxWN]; using the defaults\n", e);
            n = 0;
        }
        if (n == 0) memcpy(m[0], cdef[0], sizeof m[0]);
        if (n != 10) memcpy(m[1], cdef[2], sizeof m[1]);
        c->mm[VK_MM_CM] = cm_fit(c, m[0][0], m[0][1], m[0][2], m[0][3], m[0][4]);
        if (!c->mm[VK_MM_CM].ok && n == 0) c->mm[VK_MM_CM] = cm_fit(c, cdef[1][0], cdef[1][1], cdef[1][2], cdef[1][3], cdef[1][4]);
        c->mm[VK_MM_CM_S] = cm_fit(c, m[1][0], m[1][1], m[1][2], m[1][3], m[1][4]);
        if (!c->mm[VK_MM_CM].ok) {
            fprintf(stderr, "strata: vulkan: cooperative-matrix tiles %ux%ux%ux%ux%u do not fit this device: not used\n", m[0][0], m[0][1],
                    m[0][2], m[0][3], m[0][4]);
            c->coopmat = false;
        }
    }
    c->mm_min_tok = 8;
    e = getenv("STRATA_VK_MATMUL");
    if (e && *e) c->mm_min_tok = (uint32_t)strtoul(e, NULL, 10);
}

/* ------------------------------------------------------------ context */

static pthread_mutex_t g_ctx_mu = PTHREAD_MUTEX_INITIALIZER;
static st_vk_ctx *g_ctx[16];

static void ctx_destroy(st_vk_ctx *c) {
    if (!c) return;
    if (c->dev) {
        vkDeviceWaitIdle(c->dev);
        if (c->prof_qp) {
            prof_report(c);
            vkDestroyQueryPool(c->dev, c->prof_qp, NULL);
        }
        for (int i = 0; i < VKP_COUNT; i++)
            if (c->pipes[i]) vkDestroyPipeline(c->dev, c->pipes[i], NULL);
        if (c->layout) vkDestroyPipelineLayout(c->dev, c->layout, NULL);
        if (c->dsl) vkDestroyDescriptorSetLayout(c->dev, c->dsl, NULL);
        for (int i = 0; i < VK_STAGING_SLOTS; i++)
            if (c->up_fence[i]) vkDestroyFence(c->dev, c->up_fence[i], NULL);
        if (c->up_sem) vkDestroySemaphore(c->dev, c->up_sem, NULL);
        if (c->up_pool) vkDestroyCommandPool(c->dev, c->up_pool, NULL);
        vk_hbuf_free(c, &c->staging);
        for (int i = 0; i < c->nblocks; i++) {
            if (c->blocks[i].buf) vkDestroyBuffer(c->dev, c->blocks[i].buf, NULL);
            if (c->blocks[i].mem) vkFreeMemory(c->dev, c->blocks[i].mem, NULL);
            free(c->blocks[i].fo);
            free(c->blocks[i].fs);
        }
        vkDestroyDevice(c->dev, NULL);
    }
    free(c->blocks);
    destroy_instance(c->inst, c->messenger);
    pthread_mutex_destroy(&c->mu_qc);
    pthread_mutex_destroy(&c->mu_qt);
    pthread_mutex_destroy(&c->mu_spec);
    pthread_mutex_destroy(&c->mu_alloc);
    pthread_mutex_destroy(&c->mu_pipe);
    pthread_mutex_destroy(&c->mu_up);
    pthread_cond_destroy(&c->up_cv);
    free(c);
}

static st_status ctx_create(int want, st_vk_ctx **out, st_error *err) {
    *out = NULL;
    st_vk_ctx *c = calloc(1, sizeof *c);
    if (!c) return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&c->mu_qc, NULL);
    pthread_mutex_init(&c->mu_qt, NULL);
    pthread_mutex_init(&c->mu_spec, NULL);
    pthread_mutex_init(&c->mu_alloc, NULL);
    pthread_mutex_init(&c->mu_pipe, NULL);
    pthread_mutex_init(&c->mu_up, NULL);
    pthread_cond_init(&c->up_cv, NULL);
    st_status rc = make_instance(&c->inst, &c->messenger, err);
    if (rc) goto fail;
    uint32_t n = 0;
    vkEnumeratePhysicalDevices(c->inst, &n, NULL);
    VkPhysicalDevice *pd = calloc(n ? n : 1, sizeof *pd);
    if (!pd) { rc = st_error_set(err, ST_ERR_NOMEM, "out of memory"); goto fail; }
    vkEnumeratePhysicalDevices(c->inst, &n, pd);
    int idx = choose(pd, n, want, false, err);
    if (idx < 0) {
        free(pd);
        rc = err && err->code ? err->code : ST_ERR_UNSUPPORTED;
        goto fail;
    }
    c->index = idx;
    c->phys = pd[idx];
    free(pd);

    st_vk_device_info info;
    describe(c->phys, idx, &info);
    vkGetPhysicalDeviceProperties(c->phys, &c->props);
    vkGetPhysicalDeviceMemoryProperties(c->phys, &c->memprops);
    uint32_t tsb = 0;
    pick_queues(c->phys, &c->qf_compute, &c->qf_transfer, &c->separate_transfer, &tsb);
    c->subgroup_size = info.subgroup_size ? info.subgroup_size : 1;
    /* the full shader variant needs subgroup arithmetic and the integer dot
     * product; otherwise the _nosg variant runs (common.glsl) */
    c->subgroup_arith = info.subgroup_arith && info.int_dot && !env_on("STRATA_VK_NO_SUBGROUP");
    c->vram_bytes = info.vram_bytes;
    c->ssbo_align = c->props.limits.minStorageBufferOffsetAlignment;
    if (c->ssbo_align < 4) c->ssbo_align = 4;
    c->ssbo_range = c->props.limits.maxStorageBufferRange;
    c->max_groups_x = c->props.limits.maxComputeWorkGroupCount[0];
    if (c->max_groups_x > 65535) c->max_groups_x = 65535;
    c->ts_period = tsb > 0 ? c->props.limits.timestampPeriod : 0.0f;
    /* workgroups of 64, or one subgroup where subgroups are wider */
    uint32_t wg = 64;
    if (c->subgroup_size > wg) wg = c->subgroup_size;
    if (wg > c->props.limits.maxComputeWorkGroupInvocations) wg = c->props.limits.maxComputeWorkGroupInvocations;
    c->wg = wg;
    /* the mat-vec's workgroup size and rows per group (quantized types):
     * STRATA_VK_MV_WG (a multiple of the subgroup size) and STRATA_VK_MV_NR
     * (1, 2 or 4) for measuring others (bench/vk_microbench) */
    /* 256 where it fits: on the H200, tinyllama Q4_K_M decode 692 tok/s vs
     * 674 with 64, llama2-7b Q4_K_M 307 vs 302, Q8_0 216 vs 210 (one run,
     * docs/VULKAN.md); NR 4 was slower everywhere, 1 slower for 7B */
    c->mv_wg = wg;
    while (c->mv_wg * 2 <= 256 && c->mv_wg * 2 <= c->props.limits.maxComputeWorkGroupInvocations &&
           c->mv_wg * 2 <= c->props.limits.maxComputeWorkGroupSize[0])
        c->mv_wg *= 2;
    c->mv_nr = 2;
    const char *mw = getenv("STRATA_VK_MV_WG");
    if (mw && *mw) {
        uint32_t v = (uint32_t)strtoul(mw, NULL, 10);
        if (v >= wg && v % wg == 0 && v <= c->props.limits.maxComputeWorkGroupInvocations && v <= c->props.limits.maxComputeWorkGroupSize[0])
            c->mv_wg = v;
    }
    bool nr_all = env_nr("STRATA_VK_MV_NR", &c->mv_nr);
    /* Rows per group by type. The K-quants take one row per subgroup: each
     * lane then holds one row's weights of a step, not two, and the
     * kernels wait for memory with fewer registers (H100, tg128:
     * tinyllama Q4_K_M 865-867 vs 769-770 tok/s, llama2-7b Q4_K_M
     * 326-327 vs 306; Q8_0 keeps two: 7B 239-240 vs 232-233 with one).
     * With one row a group, the Q/K/V epilogue (pairs of rows) is off for
     * them and the attention stores the keys and values (vk_backend.c).
     * STRATA_VK_MV_NR sets every type, STRATA_VK_MV_NR_<TYPE> one (Q4_0,
     * Q8_0, Q4_K, Q5_K, Q6_K), for measuring. */
    static const char *const nr_env[7] = {NULL, NULL, "STRATA_VK_MV_NR_Q4_0", "STRATA_VK_MV_NR_Q8_0", "STRATA_VK_MV_NR_Q4_K",
                                          "STRATA_VK_MV_NR_Q5_K", "STRATA_VK_MV_NR_Q6_K"};
    for (int k = 0; k < 7; k++) {
        c->mv_nr_k[k] = nr_all || k < 4 ? c->mv_nr : 1u;
        if (nr_env[k]) env_nr(nr_env[k], &c->mv_nr_k[k]);
    }
    /* the prologue's shared memory: the quantized row (n bytes, n/16 bsums,
     * n/32 scales) beside the reductions' 5 floats per invocation; rows up
     * to 16384 (llama2-7b's 11008 FFN fits), else 8192, else none */
    c->pro_n = 0;
    for (uint32_t n = 16384; n >= 8192 && !c->pro_n; n /= 2)
        if ((uint64_t)n + n / 4 + n / 8 + 20ull * c->mv_wg <= c->props.limits.maxComputeSharedMemorySize) c->pro_n = n;
    /* workgroups of a mat-vec with a prologue: about two per multiprocessor
     * (VK_NV_shader_sm_builtins says how many; else 256), each computing
     * several row groups after one prologue (matvec.comp).
     * STRATA_VK_PRO_GROUPS sets the count, STRATA_VK_MV_GROUPS caps the
     * other mat-vecs likewise (default: no cap), for measuring. */
    c->mv_pro_groups = 256;
    if (has_dev_ext(c->phys, "VK_NV_shader_sm_builtins")) {
        VkPhysicalDeviceShaderSMBuiltinsPropertiesNV sm = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV};
        VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sm};
        vkGetPhysicalDeviceProperties2(c->phys, &p2);
        if (sm.shaderSMCount) c->mv_pro_groups = 2 * sm.shaderSMCount;
    }
    const char *pg = getenv("STRATA_VK_PRO_GROUPS"), *mg = getenv("STRATA_VK_MV_GROUPS");
    if (pg && *pg) c->mv_pro_groups = (uint32_t)strtoul(pg, NULL, 10);
    c->mv_groups = mg && *mg ? (uint32_t)strtoul(mg, NULL, 10) : 0;
    const char *pm = getenv("STRATA_VK_PRO_MAXN");
    /* Where the prologue pays: everywhere it fits, since the workgroups
     * loop over row groups (one prologue per workgroup, two workgroups per
     * multiprocessor) and the first loads wait for the prologue (fewer
     * registers, so two workgroups fit: matvec.comp). H100, tg128: llama2-7b
     * Q4_K_M 289-291 tok/s with every prologue vs 277-280 without,
     * tinyllama Q4_K_M 698-702 vs 635-639, 7B Q8_0 234 vs 223, tinyllama
     * Q8_0 729 vs 717. (A grid of a workgroup per row group, each paying
     * the prologue, lost on 4096-wide rows: 7B 245-251 vs 279-285 on the
     * H200; with the loads requested before the prologue, 249-259 vs 277.)
     * STRATA_VK_PRO_MAXN limits the row width (for measuring). */
    c->pro_maxn = pm && *pm ? (uint32_t)strtoul(pm, NULL, 10) : 16384;
    const char *pmo = getenv("STRATA_VK_PRO_MODES");
    c->pro_modes = pmo && *pmo ? (uint32_t)strtoul(pmo, NULL, 10) : 15;
    c->attn_fast = !(getenv("STRATA_VK_ATTN_FAST") && !strcmp(getenv("STRATA_VK_ATTN_FAST"), "0"));
    /* decoding's attention (attn_dec.comp): workgroups of up to 512
     * (vk_attn_dec_wg), else 256 or 128 where the device allows no more
     * (STRATA_VK_ATTN_DEC_WG, a multiple of 128, for measuring);
     * STRATA_VK_ATTN_DEC=0 uses attn.comp instead (for comparisons) */
    {
        const char *dwe = getenv("STRATA_VK_ATTN_DEC_WG");
        uint32_t dw = dwe && atoi(dwe) >= 128 && atoi(dwe) % 128 == 0 ? (uint32_t)atoi(dwe) : 512;
        while (dw > 128 && (dw > c->props.limits.maxComputeWorkGroupInvocations || dw > c->props.limits.maxComputeWorkGroupSize[0]))
            dw /= 2;
        bool off = getenv("STRATA_VK_ATTN_DEC") && !strcmp(getenv("STRATA_VK_ATTN_DEC"), "0");
        c->attn_dec_wg = off || dw > c->props.limits.maxComputeWorkGroupInvocations || dw > c->props.limits.maxComputeWorkGroupSize[0] ||
                                 dw % c->subgroup_size ? 0 : dw;
    }
    /* the attention waiting on a counter instead of a barrier after Q/K/V
     * (vk_backend.c, "chain"): its workgroups spin until every Q/K/V
     * workgroup has counted itself, which needs those launched first and
     * never waiting for it: NVIDIA's in-order launch of a queue's
     * dispatches gives that; Vulkan does not promise it. So NVIDIA only
     * (STRATA_VK_CHAIN=0/1 says otherwise: lavapipe runs dispatches one
     * after the other, where it is always safe, and the tests use it) */
    {
        const char *ch = getenv("STRATA_VK_CHAIN");
        c->chain = ch && *ch ? atoi(ch) != 0 : c->props.vendorID == 0x10DE;
    }
    const char *pc = getenv("STRATA_VK_ATTN_PROMPT_CHUNKS");
    c->attn_prompt_chunks = pc && *pc ? (uint32_t)strtoul(pc, NULL, 10) : 0;
    /* cooperative matrices (tensor cores): wherever the device has them
     * (STRATA_VK_COOPMAT=0 turns them off: 2.5-3x slower prompts on an
     * H200); with -DSTRATA_VK_CM_EMULATE=ON (tests) matmul_cm.comp is plain
     * code that needs nothing of the device but subgroups, opt-in with
     * STRATA_VK_COOPMAT=1 */
#ifdef STRATA_VK_CM_EMULATE
    c->coopmat = env_on("STRATA_VK_COOPMAT") && c->subgroup_arith;
#else
    const char *cme = getenv("STRATA_VK_COOPMAT");
    c->coopmat = !(cme && !strcmp(cme, "0")) && c->subgroup_arith && cm_probe(c->inst, c->phys);
#endif
    mm_setup(c);

    float prio = 1.0f;
    VkDeviceQueueCreateInfo qi[2] = {
        {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = c->qf_compute, .queueCount = 1, .pQueuePriorities = &prio},
        {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = c->qf_transfer, .queueCount = 1, .pQueuePriorities = &prio},
    };
    bool cm_dev = false; /* the device extension and features of matmul_cm.comp */
#ifndef STRATA_VK_CM_EMULATE
    cm_dev = c->coopmat;
#endif
    VkPhysicalDeviceCooperativeMatrixFeaturesNV fcm = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV,
                                                       .cooperativeMatrix = VK_TRUE};
    VkPhysicalDeviceShaderIntegerDotProductFeaturesKHR fdot = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES_KHR,
                                                               .pNext = cm_dev ? &fcm : NULL,
                                                               .shaderIntegerDotProduct = VK_TRUE};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                            .pNext = info.int_dot ? (void *)&fdot : cm_dev ? (void *)&fcm : NULL,
                                            .storageBuffer8BitAccess = VK_TRUE,
                                            .shaderFloat16 = cm_dev ? VK_TRUE : VK_FALSE,
                                            .vulkanMemoryModel = cm_dev ? VK_TRUE : VK_FALSE,
                                            .timelineSemaphore = VK_TRUE};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                            .pNext = &f12,
                                            .storageBuffer16BitAccess = VK_TRUE};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11};
    const char *exts[4] = {VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME};
    uint32_t n_ext = 1;
    if (info.int_dot) exts[n_ext++] = VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME;
    if (cm_dev) exts[n_ext++] = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
    /* STRATA_VK_PIPE_STATS=1: the driver's statistics of every pipeline
     * (registers, spills, ...) on stderr as it is created, where the device
     * offers VK_KHR_pipeline_executable_properties (for tuning: occupancy,
     * set by registers, decides the mat-vec kernels, docs/VULKAN.md) */
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR fpe = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR, .pipelineExecutableInfo = VK_TRUE};
    const char *ps = getenv("STRATA_VK_PIPE_STATS");
    c->pipe_stats = ps && !strcmp(ps, "1") && has_dev_ext(c->phys, VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
    if (c->pipe_stats) {
        fpe.pNext = f2.pNext;
        f2.pNext = &fpe;
        exts[n_ext++] = VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME;
    }
    VkDeviceCreateInfo di = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                             .pNext = &f2,
                             .queueCreateInfoCount = c->separate_transfer ? 2 : 1,
                             .pQueueCreateInfos = qi,
                             .enabledExtensionCount = n_ext,
                             .ppEnabledExtensionNames = exts};
    VkResult r = vkCreateDevice(c->phys, &di, NULL, &c->dev);
    if (r != VK_SUCCESS) {
        c->dev = VK_NULL_HANDLE;
        rc = st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan: cannot create a device on %s (%s)", info.name, vk_result_str(r));
        goto fail;
    }
    const char *vl = getenv("STRATA_VK_VRAM_LIMIT");
    if (vl && *vl) {
        char *e;
        double v = strtod(vl, &e);
        double mul = *e == 'G' || *e == 'g' ? 1073741824.0 : *e == 'M' || *e == 'm' ? 1048576.0 : *e == 'K' || *e == 'k' ? 1024.0 : 1.0;
        if (v > 0) c->vram_limit = (VkDeviceSize)(v * mul);
    }
    const char *pe = getenv("STRATA_VK_PROFILE");
    c->prof_host = pe && (!strcmp(pe, "1") || !strcmp(pe, "host"));
    if (c->ts_period > 0 && pe && !strcmp(pe, "1")) {
        VkQueryPoolCreateInfo qpi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO, .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = VK_PROF_MAX};
        c->prof = vkCreateQueryPool(c->dev, &qpi, NULL, &c->prof_qp) == VK_SUCCESS;
    }
    vkGetDeviceQueue(c->dev, c->qf_compute, 0, &c->q_compute);
    vkGetDeviceQueue(c->dev, c->qf_transfer, 0, &c->q_transfer);
    c->push_desc = (PFN_vkCmdPushDescriptorSetKHR)vkGetDeviceProcAddr(c->dev, "vkCmdPushDescriptorSetKHR");
    if (!c->push_desc) { rc = st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan: vkCmdPushDescriptorSetKHR missing"); goto fail; }

    VkDescriptorSetLayoutBinding lb[VK_MAX_BINDINGS];
    for (int i = 0; i < VK_MAX_BINDINGS; i++)
        lb[i] = (VkDescriptorSetLayoutBinding){(uint32_t)i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, NULL};
    VkDescriptorSetLayoutCreateInfo dli = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                           .flags = VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR,
                                           .bindingCount = VK_MAX_BINDINGS,
                                           .pBindings = lb};
    if ((rc = vkcheck(vkCreateDescriptorSetLayout(c->dev, &dli, NULL, &c->dsl), "vkCreateDescriptorSetLayout", err))) goto fail;
    VkPushConstantRange pr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, VK_PUSH_BYTES};
    VkPipelineLayoutCreateInfo pli = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                      .setLayoutCount = 1,
                                      .pSetLayouts = &c->dsl,
                                      .pushConstantRangeCount = 1,
                                      .pPushConstantRanges = &pr};
    if ((rc = vkcheck(vkCreatePipelineLayout(c->dev, &pli, NULL, &c->layout), "vkCreatePipelineLayout", err))) goto fail;

    /* the upload path */
    if ((rc = vk_hbuf_new(c, STAGING_BYTES, &c->staging, err))) goto fail;
    VkCommandPoolCreateInfo cpi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = c->qf_transfer};
    if ((rc = vkcheck(vkCreateCommandPool(c->dev, &cpi, NULL, &c->up_pool), "vkCreateCommandPool", err))) goto fail;
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .commandPool = c->up_pool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                       .commandBufferCount = VK_STAGING_SLOTS};
    if ((rc = vkcheck(vkAllocateCommandBuffers(c->dev, &cai, c->up_cb), "vkAllocateCommandBuffers", err))) goto fail;
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    for (int i = 0; i < VK_STAGING_SLOTS; i++)
        if ((rc = vkcheck(vkCreateFence(c->dev, &fi, NULL, &c->up_fence[i]), "vkCreateFence", err))) goto fail;
    VkSemaphoreTypeCreateInfo sti = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO, .semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE};
    VkSemaphoreCreateInfo sci = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO, .pNext = &sti};
    if ((rc = vkcheck(vkCreateSemaphore(c->dev, &sci, NULL, &c->up_sem), "vkCreateSemaphore", err))) goto fail;
    *out = c;
    return ST_OK;
fail:
    ctx_destroy(c);
    return rc ? rc : ST_ERR_INTERNAL;
}

st_status vk_ctx_get(int index, st_vk_ctx **out, st_error *err) {
    *out = NULL;
    st_status rc = ST_OK;
    pthread_mutex_lock(&g_ctx_mu);
    if (index < 0) { /* the preferred device: share a context already open on it */
        index = st_vk_pick_device(-1, false, err);
        if (index < 0) {
            pthread_mutex_unlock(&g_ctx_mu);
            return err && err->code ? err->code : ST_ERR_UNSUPPORTED;
        }
    }
    if (index >= (int)(sizeof g_ctx / sizeof g_ctx[0])) {
        pthread_mutex_unlock(&g_ctx_mu);
        return st_error_set(err, ST_ERR_ARG, "vulkan: device index %d is out of range", index);
    }
    if (!g_ctx[index]) rc = ctx_create(index, &g_ctx[index], err);
    if (!rc) {
        g_ctx[index]->refs++;
        *out = g_ctx[index];
    }
    pthread_mutex_unlock(&g_ctx_mu);
    return rc;
}

void vk_ctx_put(st_vk_ctx *c) {
    if (!c) return;
    pthread_mutex_lock(&g_ctx_mu);
    if (--c->refs == 0) {
        g_ctx[c->index] = NULL;
        ctx_destroy(c);
    }
    pthread_mutex_unlock(&g_ctx_mu);
}
