/* The cpu backend of a benchmark on TANDEM_THREADS threads (bench/run.sh
 * sets it for both sides of a comparison), else on every core. */
#ifndef TANDEM_BENCH_THREADS_H
#define TANDEM_BENCH_THREADS_H

#include <stdlib.h>

#include "tandem/tandem.h"

static inline tdm_status bench_cpu_backend(tdm_backend **backend)
{
    const char *threads = getenv("TANDEM_THREADS");
    return tdm_cpu_backend_create_threads(threads ? strtoul(threads, NULL, 10) : 0, backend);
}

#endif
