/* libFuzzer target: a .npy file, read as 0/1 bytes and as numpy.packbits
 * output (its column count from the input's last byte). */
#include "fuzz_input.h"
#include "tandem/tandem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size, ".npy");
    size_t packed_cols[2] = {0, size ? data[size - 1] : 1};
    for (int i = 0; i < 2; i++) {
        tdm_binary_data binary;
        if (tdm_binary_load_npy(path, packed_cols[i], &binary) == TDM_OK)
            tdm_binary_free(&binary);
    }
    return 0;
}
