#include "backend/cpu/cpu_gemm.h"

#include <omp.h>
#include <stdint.h>
#include <stdio.h>

#include "backend/cpu/gemm_portable.h"
#include "core/error.h"

#if defined(TANDEM_GEMM_ONEDNN)
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#elif defined(TANDEM_GEMM_OPENBLAS)
#include <cblas.h>
#endif

static const float *const_floats(tdm_view view)
{
    return tdm_view_host_floats(view);
}

#if defined(TANDEM_GEMM_ONEDNN)

static const char *isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_all: return "no vector ISA";
    }
    return "an ISA newer than this build knows";
}

tdm_status tdm_cpu_gemm(size_t threads, const tdm_sgemm_args *args)
{
    /* oneDNN's GEMM runs on OpenMP with omp_get_max_threads() threads; the
     * caller's setting is restored after it. */
    int callers_threads = omp_get_max_threads();
    omp_set_num_threads((int)threads);
    dnnl_status_t status = dnnl_sgemm(
        args->trans_a == TDM_TRANS ? 'T' : 'N', args->trans_b == TDM_TRANS ? 'T' : 'N',
        (dnnl_dim_t)args->m, (dnnl_dim_t)args->n, (dnnl_dim_t)args->k, args->alpha,
        const_floats(args->a), (dnnl_dim_t)args->lda, const_floats(args->b), (dnnl_dim_t)args->ldb,
        args->beta, tdm_view_host_floats(args->c), (dnnl_dim_t)args->ldc);
    omp_set_num_threads(callers_threads);
    if (status != dnnl_success)
        return TDM_FAIL(status == dnnl_out_of_memory ? TDM_ERR_OUT_OF_MEMORY
                                                     : TDM_ERR_INVALID_ARGUMENT,
                        "sgemm %zux%zux%zu: dnnl_sgemm failed: %s", args->m, args->n, args->k,
                        dnnl_status2str(status));
    return TDM_OK;
}

void tdm_cpu_gemm_describe(char *out, size_t capacity)
{
    const dnnl_version_t *v = dnnl_version();
    snprintf(out, capacity, "oneDNN %d.%d.%d, %s", v->major, v->minor, v->patch,
             isa_name(dnnl_get_effective_cpu_isa()));
}

#elif defined(TANDEM_GEMM_OPENBLAS)

tdm_status tdm_cpu_gemm(size_t threads, const tdm_sgemm_args *args)
{
    if (args->m > INT32_MAX || args->n > INT32_MAX || args->k > INT32_MAX ||
        args->lda > INT32_MAX || args->ldb > INT32_MAX || args->ldc > INT32_MAX)
        return TDM_FAIL(TDM_ERR_INVALID_ARGUMENT, "sgemm: a dimension exceeds CBLAS's int range");
    openblas_set_num_threads((int)threads);
    cblas_sgemm(CblasRowMajor, args->trans_a == TDM_TRANS ? CblasTrans : CblasNoTrans,
                args->trans_b == TDM_TRANS ? CblasTrans : CblasNoTrans, (int)args->m, (int)args->n,
                (int)args->k, args->alpha, const_floats(args->a), (int)args->lda,
                const_floats(args->b), (int)args->ldb, args->beta, tdm_view_host_floats(args->c),
                (int)args->ldc);
    return TDM_OK;
}

void tdm_cpu_gemm_describe(char *out, size_t capacity)
{
    snprintf(out, capacity, "OpenBLAS, %s kernel", openblas_get_corename());
}

#else

tdm_status tdm_cpu_gemm(size_t threads, const tdm_sgemm_args *args)
{
    return tdm_cpu_sgemm_portable(threads, args->trans_a, args->trans_b, args->m, args->n, args->k,
                                  args->alpha, const_floats(args->a), args->lda,
                                  const_floats(args->b), args->ldb, args->beta,
                                  tdm_view_host_floats(args->c), args->ldc);
}

void tdm_cpu_gemm_describe(char *out, size_t capacity)
{
    snprintf(out, capacity, "portable C");
}

#endif
