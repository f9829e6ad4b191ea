/* libFuzzer target: EM's CSV of 0/1 rows, with and without a label column. */
#include "fuzz_input.h"
#include "tandem/tandem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size, ".csv");
    for (int labels = 0; labels < 2; labels++) {
        tdm_binary_data binary;
        if (tdm_binary_load_csv(path, labels, &binary) == TDM_OK)
            tdm_binary_free(&binary);
    }
    return 0;
}
