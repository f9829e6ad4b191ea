/* Multiplies two 2x2 matrices on the cpu backend of an installed tandem. */
#include <stdio.h>

#include <tandem/tandem.h>

int main(void)
{
    const float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    float c[4] = {0};
    tdm_backend *cpu = NULL;
    tdm_buffer *buffer = NULL;
    if (tdm_cpu_backend_create(&cpu) != TDM_OK ||
        tdm_buffer_alloc(cpu, 12 * sizeof(float), &buffer) != TDM_OK ||
        tdm_buffer_upload(buffer, 0, a, sizeof a) != TDM_OK ||
        tdm_buffer_upload(buffer, sizeof a, b, sizeof b) != TDM_OK) {
        fprintf(stderr, "error: %s\n", tdm_last_error());
        return 1;
    }
    tdm_sgemm_args args = {.m = 2,
                           .n = 2,
                           .k = 2,
                           .alpha = 1.0f,
                           .a = {buffer, 0},
                           .lda = 2,
                           .b = {buffer, 4},
                           .ldb = 2,
                           .c = {buffer, 8},
                           .ldc = 2};
    if (tdm_sgemm(cpu, &args) != TDM_OK || tdm_buffer_download(buffer, 32, c, sizeof c) != TDM_OK) {
        fprintf(stderr, "error: %s\n", tdm_last_error());
        return 1;
    }
    printf("%g %g %g %g\n", c[0], c[1], c[2], c[3]);
    tdm_buffer_free(buffer);
    tdm_backend_free(cpu);
    return c[0] == 19 && c[1] == 22 && c[2] == 43 && c[3] == 50 ? 0 : 1;
}
