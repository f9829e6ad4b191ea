/* libFuzzer target: an image CSV (the digits' format: 64 pixels 0..16 and
 * a label 0..9 a row), gzipped or plain. */
#include "fuzz_input.h"
#include "tandem/tandem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tdm_dataset set;
    if (tdm_dataset_load_csv(fuzz_file(data, size, ".csv"), (tdm_sample_shape){1, 8, 8}, 16.0f, 10,
                             &set) == TDM_OK)
        tdm_dataset_free(&set);
    return 0;
}
