/* libFuzzer target: an IDX image file; its labels are the input's first
 * bytes after an IDX label header naming as many as the images claim. */
#include <string.h>

#include "fuzz_input.h"
#include "tandem/tandem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the labels: a header for the count in bytes 4..7 of the input, then bytes */
    uint8_t labels[8 + 4096] = {0, 0, 8, 1, 0, 0, 0, 0};
    if (size >= 8)
        memcpy(labels + 4, data + 4, 4);
    size_t label_bytes = size < 4096 ? size : 4096;
    memcpy(labels + 8, data, label_bytes);
    const char *labels_path = fuzz_write(1, labels, 8 + label_bytes, ".labels");
    tdm_dataset set;
    if (tdm_dataset_load_idx(fuzz_file(data, size, ".idx"), labels_path, 10, &set) == TDM_OK)
        tdm_dataset_free(&set);
    return 0;
}
