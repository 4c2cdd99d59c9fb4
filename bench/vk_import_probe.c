/* vk_import_probe.c — can the device copy a model's bytes straight from the
 * page cache? (docs/VULKAN.md, "Not yet": streaming.)
 *
 *   vk_import_probe FILE [MiB]
 *
 * Streaming layers into device memory copies the file from the page cache
 * into pinned memory on the CPU, then DMAs it to the device; on the H100
 * machine the CPU copy, not the link, is the limit. VK_EXT_external_memory_host
 * would let the device DMA from the file's mapping itself. For each of four
 * mappings (the file MAP_SHARED and MAP_PRIVATE read-only, MAP_PRIVATE
 * read-write, and anonymous memory for comparison) this imports chunks of
 * MiB (default 4) and the first GiB whole, and copies each import to the
 * device on a transfer queue, printing what the driver says and the rates.
 * Needs nothing of strata: the Vulkan loader and a device. */
#define _GNU_SOURCE
#include <vulkan/vulkan.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static VkDevice g_dev;
static VkQueue g_q;
static VkPhysicalDeviceMemoryProperties g_mp;
static PFN_vkGetMemoryHostPointerPropertiesEXT g_ptr_props;
static VkCommandBuffer g_cb;
static VkFence g_fence;
static VkBuffer g_dst;
static const VkDeviceSize DST_BYTES = 256ull << 20;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int mem_type(uint32_t bits, VkMemoryPropertyFlags want) {
    for (uint32_t i = 0; i < g_mp.memoryTypeCount; i++)
        if ((bits >> i & 1) && (g_mp.memoryTypes[i].propertyFlags & want) == want) return (int)i;
    return -1;
}

/* Imports [p, p + n) as a transfer-source buffer: VK_SUCCESS or the error. */
static VkResult import_range(void *p, VkDeviceSize n, VkBuffer *buf, VkDeviceMemory *mem) {
    VkMemoryHostPointerPropertiesEXT hp = {.sType = VK_STRUCTURE_TYPE_MEMORY_HOST_POINTER_PROPERTIES_EXT};
    VkResult r = g_ptr_props(g_dev, VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT, p, &hp);
    if (r != VK_SUCCESS) return r;
    VkExternalMemoryBufferCreateInfo eb = {.sType = VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO,
                                           .handleTypes = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT};
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .pNext = &eb, .size = n, .usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT};
    if ((r = vkCreateBuffer(g_dev, &bi, NULL, buf)) != VK_SUCCESS) return r;
    VkMemoryRequirements mr;
    vkGetBufferMemoryRequirements(g_dev, *buf, &mr);
    int ti = mem_type(hp.memoryTypeBits & mr.memoryTypeBits, 0);
    VkImportMemoryHostPointerInfoEXT ii = {.sType = VK_STRUCTURE_TYPE_IMPORT_MEMORY_HOST_POINTER_INFO_EXT,
                                           .handleType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT,
                                           .pHostPointer = p};
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .pNext = &ii, .allocationSize = n, .memoryTypeIndex = (uint32_t)ti};
    r = ti < 0 ? VK_ERROR_FEATURE_NOT_PRESENT : vkAllocateMemory(g_dev, &ai, NULL, mem);
    if (r == VK_SUCCESS) r = vkBindBufferMemory(g_dev, *buf, *mem, 0);
    if (r != VK_SUCCESS) {
        vkDestroyBuffer(g_dev, *buf, NULL);
        *buf = VK_NULL_HANDLE;
    }
    return r;
}

/* Copies n bytes of src to the device and waits. */
static void copy_to_device(VkBuffer src, VkDeviceSize off, VkDeviceSize n) {
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    vkBeginCommandBuffer(g_cb, &bi);
    VkBufferCopy c = {off, 0, n};
    vkCmdCopyBuffer(g_cb, src, g_dst, 1, &c);
    vkEndCommandBuffer(g_cb);
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &g_cb};
    vkResetFences(g_dev, 1, &g_fence);
    vkQueueSubmit(g_q, 1, &si, g_fence);
    vkWaitForFences(g_dev, 1, &g_fence, VK_TRUE, UINT64_MAX);
}

static void probe(const char *what, void *m, size_t size, VkDeviceSize chunk) {
    printf("%s:\n", what);
    double t_imp = 0, t_cp = 0;
    size_t done = 0;
    VkResult bad = VK_SUCCESS;
    for (size_t off = 0; off + chunk <= size && off < (1ull << 30) && bad == VK_SUCCESS; off += chunk) {
        VkBuffer b;
        VkDeviceMemory mem;
        double t0 = now_s();
        bad = import_range((char *)m + off, chunk, &b, &mem);
        if (bad != VK_SUCCESS) break;
        double t1 = now_s();
        copy_to_device(b, 0, chunk < DST_BYTES ? chunk : DST_BYTES);
        t_imp += t1 - t0;
        t_cp += now_s() - t1;
        vkDestroyBuffer(g_dev, b, NULL);
        vkFreeMemory(g_dev, mem, NULL);
        done += chunk;
    }
    if (bad != VK_SUCCESS)
        printf("  import of %llu MiB at offset %zu: error %d\n", (unsigned long long)(chunk >> 20), done, (int)bad);
    if (done)
        printf("  %zu chunks of %llu MiB: import %.1f us each, copies %.1f GB/s\n", done / chunk, (unsigned long long)(chunk >> 20),
               t_imp / (double)(done / chunk) * 1e6, (double)done / t_cp / 1e9);
    size_t whole = size < (1ull << 30) ? size & ~(size_t)(DST_BYTES - 1) : (1ull << 30);
    if (whole == 0) return;
    VkBuffer b;
    VkDeviceMemory mem;
    double t0 = now_s();
    VkResult r = import_range(m, whole, &b, &mem);
    if (r != VK_SUCCESS) {
        printf("  import of %zu MiB whole: error %d\n", whole >> 20, (int)r);
        return;
    }
    double t1 = now_s();
    for (size_t off = 0; off < whole; off += DST_BYTES) copy_to_device(b, off, DST_BYTES);
    printf("  import of %zu MiB whole: %.1f ms, copies %.1f GB/s\n", whole >> 20, (t1 - t0) * 1e3, (double)whole / (now_s() - t1) / 1e9);
    vkDestroyBuffer(g_dev, b, NULL);
    vkFreeMemory(g_dev, mem, NULL);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: vk_import_probe FILE [MiB]\n");
        return 2;
    }
    VkDeviceSize chunk = (VkDeviceSize)(argc > 2 ? atoi(argv[2]) : 4) << 20;
    if (chunk == 0) chunk = 4ull << 20;
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .apiVersion = VK_API_VERSION_1_2};
    VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    VkInstance inst;
    VkPhysicalDevice pd;
    uint32_t n = 1;
    if (vkCreateInstance(&ici, NULL, &inst) != VK_SUCCESS || vkEnumeratePhysicalDevices(inst, &n, &pd) < 0 || n == 0) {
        fprintf(stderr, "vk_import_probe: no Vulkan device\n");
        return 1;
    }
    VkPhysicalDeviceExternalMemoryHostPropertiesEXT eh = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_MEMORY_HOST_PROPERTIES_EXT};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &eh};
    vkGetPhysicalDeviceProperties2(pd, &p2);
    vkGetPhysicalDeviceMemoryProperties(pd, &g_mp);
    printf("%s (driver %u), import alignment %llu\n", p2.properties.deviceName, p2.properties.driverVersion,
           (unsigned long long)eh.minImportedHostPointerAlignment);
    /* a transfer-only queue where there is one (the store's uploads use it) */
    uint32_t nq = 0, qf = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, NULL);
    VkQueueFamilyProperties *qp = calloc(nq, sizeof *qp);
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, qp);
    for (uint32_t i = 0; i < nq; i++)
        if ((qp[i].queueFlags & VK_QUEUE_TRANSFER_BIT) && !(qp[i].queueFlags & (VK_QUEUE_COMPUTE_BIT | VK_QUEUE_GRAPHICS_BIT))) {
            qf = i;
            break;
        }
    free(qp);
    float prio = 1;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = qf, .queueCount = 1, .pQueuePriorities = &prio};
    const char *ext[] = {"VK_KHR_external_memory", "VK_EXT_external_memory_host"};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1, .pQueueCreateInfos = &qci,
                              .enabledExtensionCount = 2, .ppEnabledExtensionNames = ext};
    VkResult r = vkCreateDevice(pd, &dci, NULL, &g_dev);
    if (r != VK_SUCCESS) {
        printf("no VK_EXT_external_memory_host (vkCreateDevice: %d)\n", (int)r);
        return 1;
    }
    vkGetDeviceQueue(g_dev, qf, 0, &g_q);
    g_ptr_props = (PFN_vkGetMemoryHostPointerPropertiesEXT)vkGetDeviceProcAddr(g_dev, "vkGetMemoryHostPointerPropertiesEXT");
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = DST_BYTES, .usage = VK_BUFFER_USAGE_TRANSFER_DST_BIT};
    VkMemoryRequirements mr;
    VkDeviceMemory dmem;
    vkCreateBuffer(g_dev, &bi, NULL, &g_dst);
    vkGetBufferMemoryRequirements(g_dev, g_dst, &mr);
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = mr.size,
                               .memoryTypeIndex = (uint32_t)mem_type(mr.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT)};
    if (vkAllocateMemory(g_dev, &ai, NULL, &dmem) != VK_SUCCESS || vkBindBufferMemory(g_dev, g_dst, dmem, 0) != VK_SUCCESS) {
        fprintf(stderr, "vk_import_probe: no device memory\n");
        return 1;
    }
    VkCommandPoolCreateInfo cpi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, .queueFamilyIndex = qf};
    VkCommandPool pool;
    vkCreateCommandPool(g_dev, &cpi, NULL, &pool);
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = pool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    vkAllocateCommandBuffers(g_dev, &cai, &g_cb);
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    vkCreateFence(g_dev, &fci, NULL, &g_fence);

    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "vk_import_probe: cannot open %s\n", argv[1]);
        return 1;
    }
    size_t size = (size_t)st.st_size & ~(size_t)(eh.minImportedHostPointerAlignment ? eh.minImportedHostPointerAlignment - 1 : 4095);
    static const struct { const char *what; int prot, flags; bool file; } maps[] = {
        {"file, MAP_SHARED, read-only", PROT_READ, MAP_SHARED, true},
        {"file, MAP_PRIVATE, read-only", PROT_READ, MAP_PRIVATE, true},
        {"file, MAP_PRIVATE, read-write", PROT_READ | PROT_WRITE, MAP_PRIVATE, true},
        {"anonymous memory", PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, false},
    };
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++) {
        void *m = mmap(NULL, size, maps[i].prot, maps[i].flags, maps[i].file ? fd : -1, 0);
        if (m == MAP_FAILED) {
            printf("%s: mmap failed\n", maps[i].what);
            continue;
        }
        probe(maps[i].what, m, size, chunk);
        munmap(m, size);
    }
    close(fd);
    return 0;
}
