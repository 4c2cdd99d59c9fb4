/* vk_microbench.c — the Vulkan backend's kernels alone, against the card's
 * own bandwidth measured in the same run (docs/VULKAN.md, "Benchmarks").
 *
 *   vk_microbench [device] [MiB]
 *
 * Prints the read bandwidth of a compute shader (the HBM roofline the
 * kernels are held to), a vkCmdCopyBuffer's, the host-to-device upload
 * bandwidth through the layer store's staging path (the streaming bound),
 * and every mat-vec shader on llama2-7b's shapes (4096 x 4096, 11008 x 4096,
 * 4096 x 11008) as GB/s of weight bytes and as a fraction of the read
 * bandwidth, chained (a barrier after each product, as in a forward pass)
 * and back to back (independent products: the shader's own rate), and the
 * time of a one-workgroup product (the dependent-dispatch gap); with "mm",
 * the prompt (mat-mat) kernels instead. CMake target vk_microbench (built
 * with the Vulkan backend). */
#include "quant.h"
#include "vk_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* every type of tlist on every shape (columns, rows) */
static void cases(const int *tlist, int nt, const int (*shapes)[2], int ns, int *types, int *cols, int *rows) {
    for (int i = 0; i < nt; i++)
        for (int s = 0; s < ns; s++) {
            types[i * ns + s] = tlist[i];
            cols[i * ns + s] = shapes[s][0];
            rows[i * ns + s] = shapes[s][1];
        }
}

/* `vk_microbench DEV MIB mm [N_TOK]`: the mat-mat (prompt) kernels alone on
 * llama2-7b's and tinyllama-1.1b's shapes, N_TOK tokens (512), as TFLOPS
 * (2 x rows x cols x tokens per product). */
static int bench_mm(int dev, int n_tok) {
    static const int tlist[] = {ST_TYPE_Q4_K, ST_TYPE_Q6_K, ST_TYPE_Q8_0};
    static const int shapes[][2] = {{4096, 4096}, {4096, 11008}, {11008, 4096}, {2048, 2048}, {2048, 256}, {2048, 5632}, {5632, 2048}};
    enum { NT = sizeof tlist / sizeof tlist[0], NS = sizeof shapes / sizeof shapes[0] };
    int types[NT * NS], cols[NT * NS], rows[NT * NS];
    double sec[NT * NS];
    cases(tlist, NT, shapes, NS, types, cols, rows);
    st_error err = {0};
    if (st_vk_bench_matvec(dev, NT * NS, types, cols, rows, n_tok, 20, true, sec, &err)) {
        fprintf(stderr, "vk_microbench: %s\n", err.msg);
        return 1;
    }
    printf("%-6s %-13s %6s %10s %8s\n", "type", "rows x cols", "tokens", "us/call", "TFLOPS");
    for (int j = 0; j < NT * NS; j++)
        printf("%-6s %5dx%-7d %6d %10.1f %8.1f\n", st_type_name((st_type)types[j]), rows[j], cols[j], n_tok, sec[j] * 1e6,
               2.0 * rows[j] * cols[j] * n_tok / sec[j] / 1e12);
    return 0;
}

int main(int argc, char **argv) {
    int dev = argc > 1 ? atoi(argv[1]) : -1;
    uint64_t cb = (argc > 2 ? (uint64_t)atoi(argv[2]) : 1024) << 20;
    if (argc > 3 && !strcmp(argv[3], "mm")) return bench_mm(dev, argc > 4 ? atoi(argv[4]) : 512);
    st_error err = {0};
    double rd, d2d, h2d, pinned = 0;
    if (st_vk_bench_copy(dev, cb, 10, &rd, &d2d, &h2d, &pinned, &err)) {
        fprintf(stderr, "vk_microbench: %s\n", err.msg);
        return 1;
    }
    double bw = (double)cb / rd / 1e9;
    printf("read by a compute shader: %.0f GB/s (%llu MiB)\n", bw, (unsigned long long)(cb >> 20));
    printf("vkCmdCopyBuffer device-to-device: %.0f GB/s read + %.0f GB/s written\n", (double)cb / d2d / 1e9, (double)cb / d2d / 1e9);
    printf("host-to-device DMA from pinned memory (the staging ring): %.1f GB/s\n", pinned);
    printf("host-to-device upload (pageable -> staging -> device): %.1f GB/s\n", (double)cb / h2d / 1e9);
    static const int tlist[] = {ST_TYPE_Q4_K, ST_TYPE_Q6_K, ST_TYPE_Q8_0, ST_TYPE_Q4_0, ST_TYPE_Q5_K, ST_TYPE_F16};
    static const int shapes[][2] = {{4096, 4096}, {4096, 11008}, {11008, 4096}};
    enum { NT = sizeof tlist / sizeof tlist[0], NS = sizeof shapes / sizeof shapes[0] };
    int types[NT * NS], cols[NT * NS], rows[NT * NS];
    double sec[NT * NS];
    cases(tlist, NT, shapes, NS, types, cols, rows);
    /* chained: a barrier after each product, as in a forward pass (the
     * dispatch gap counts); back to back: independent products, what the
     * shader itself reads */
    double sec2[NT * NS];
    if (st_vk_bench_matvec(dev, NT * NS, types, cols, rows, 1, 200, true, sec, &err) ||
        st_vk_bench_matvec(dev, NT * NS, types, cols, rows, 1, 200, false, sec2, &err)) {
        fprintf(stderr, "vk_microbench: %s\n", err.msg);
        return 1;
    }
    printf("%-6s %-13s | %-29s | %-29s\n", "", "", "chained (barrier after each)", "back to back");
    printf("%-6s %-13s | %8s %10s %8s | %8s %10s %8s\n", "type", "rows x cols", "us/call", "GB/s", "of read", "us/call", "GB/s",
           "of read");
    for (int j = 0; j < NT * NS; j++) {
        double bytes = (double)st_row_size((st_type)types[j], cols[j]) * rows[j];
        printf("%-6s %5dx%-7d | %8.2f %10.0f %7.0f%% | %8.2f %10.0f %7.0f%%\n", st_type_name((st_type)types[j]), rows[j], cols[j],
               sec[j] * 1e6, bytes / sec[j] / 1e9, 100.0 * bytes / sec[j] / 1e9 / bw, sec2[j] * 1e6, bytes / sec2[j] / 1e9,
               100.0 * bytes / sec2[j] / 1e9 / bw);
    }
    /* the gap a dependent dispatch costs: a product too small to take time */
    int ft = ST_TYPE_Q4_K, fc = 256, fr = 16;
    if (!st_vk_bench_matvec(dev, 1, &ft, &fc, &fr, 1, 200, true, sec, &err) &&
        !st_vk_bench_matvec(dev, 1, &ft, &fc, &fr, 1, 200, false, sec2, &err))
        printf("one workgroup's product (Q4_K 16x256): %.2f us chained, %.2f us back to back\n", sec[0] * 1e6, sec2[0] * 1e6);
    return 0;
}
