/* vk_microbench.c — the Vulkan backend's kernels alone, against the card's
 * own bandwidth measured in the same run (docs/VULKAN.md, "Benchmarks").
 *
 *   vk_microbench [device]
 *
 * Prints the device-to-device copy bandwidth (the practical HBM roofline),
 * the host-to-device upload bandwidth through the layer store's staging path
 * (the streaming bound), and every mat-vec shader on llama2-7b's shapes
 * (4096 x 4096, 11008 x 4096, 4096 x 11008) as GB/s of weight bytes and as a
 * fraction of the copy bandwidth. Built with the Vulkan backend (CMake
 * target vk_microbench). */
#include "quant.h"
#include "vk_backend.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int dev = argc > 1 ? atoi(argv[1]) : -1;
    st_error err = {0};
    double d2d, h2d;
    uint64_t cb = 256ull << 20;
    if (st_vk_bench_copy(dev, cb, 20, &d2d, &h2d, &err)) {
        fprintf(stderr, "vk_microbench: %s\n", err.msg);
        return 1;
    }
    /* a copy reads and writes every byte */
    double bw = 2.0 * (double)cb / d2d / 1e9;
    printf("device-to-device copy: %.0f GB/s (read + write of %llu MiB)\n", bw, (unsigned long long)(cb >> 20));
    printf("host-to-device upload (pageable -> staging -> device): %.1f GB/s\n", (double)cb / h2d / 1e9);
    static const int types[] = {ST_TYPE_Q4_K, ST_TYPE_Q6_K, ST_TYPE_Q8_0, ST_TYPE_Q4_0, ST_TYPE_Q5_K, ST_TYPE_F16};
    static const int shapes[][2] = {{4096, 4096}, {4096, 11008}, {11008, 4096}};
    printf("%-6s %-13s %10s %10s %8s\n", "type", "rows x cols", "us/call", "GB/s", "of copy");
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int cols = shapes[s][0], rows = shapes[s][1];
            double sec;
            if (st_vk_bench_matvec(dev, types[i], cols, rows, 1, 200, &sec, &err)) {
                fprintf(stderr, "vk_microbench: %s\n", err.msg);
                return 1;
            }
            double bytes = (double)st_row_size((st_type)types[i], cols) * rows;
            printf("%-6s %5dx%-7d %10.2f %10.0f %7.0f%%\n", st_type_name((st_type)types[i]), rows, cols, sec * 1e6,
                   bytes / sec / 1e9, 100.0 * bytes / sec / 1e9 / bw);
        }
    return 0;
}
