/*
 * fuzz_safetensors.c — the safetensors reader (core/nn/safetensors.h) on
 * arbitrary bytes, through a scratch file since the reader maps its file.
 * Properties: no crash or out-of-bounds read; an accepted file's tensors lie
 * inside the file, tile its data region, and every byte of every tensor can
 * be read (a read past the mapping would fault); a rejected one leaves a
 * one-line message.
 */
#include "config.h"

#include <string.h>

#include "fuzz.h"
#include "safetensors.h"
#include "util.h"

int fuzz_safetensors(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("model.safetensors", data, size);
    lmp_st *st;
    fuzz_clear_error();
    if (lmp_st_open(path, &st) != 0) {
        fuzz_check_errmsg("safetensors");
        return 0;
    }
    uint64_t total = 0;
    for (int i = 0; i < lmp_st_count(st); i++) {
        const lmp_st_info *ti = lmp_st_info_at(st, i);
        const void *p;
        int64_t shape[LMP_ST_MAX_DIMS];
        int ndim;
        if (lmp_st_find(st, ti->name) != ti) fuzz_fail("safetensors", "tensor \"%s\" not found by name", ti->name);
        if (lmp_st_get(st, ti->name, ti->dtype, &p, shape, &ndim) != 0)
            fuzz_fail("safetensors", "accepted tensor \"%s\" unreadable: %s", ti->name, lmp_errmsg());
        uint64_t n = 1;
        for (int d = 0; d < ndim; d++) n *= (uint64_t)shape[d];
        if (n * lmp_st_dtype_size(ti->dtype) != ti->nbytes)
            fuzz_fail("safetensors", "tensor \"%s\": shape and size disagree", ti->name);
        unsigned sum = 0;
        for (size_t k = 0; k < ti->nbytes; k++) sum += ((const unsigned char *)p)[k];
        (void)sum;
        total += ti->nbytes;
        if (lmp_st_get(st, ti->name, "NO_SUCH_DTYPE", &p, NULL, NULL) == 0)
            fuzz_fail("safetensors", "tensor \"%s\" read with a wrong dtype", ti->name);
    }
    if (total > size) fuzz_fail("safetensors", "tensors hold %llu bytes of a %zu-byte file", (unsigned long long)total, size);
    for (int i = 0; i < lmp_st_metadata_count(st); i++) {
        const char *k = lmp_st_metadata_key(st, i);
        if (!k || !lmp_st_metadata(st, k)) fuzz_fail("safetensors", "metadata %d unreadable", i);
    }
    lmp_st_close(st);
    return 0;
}
LMP_FUZZ_ENTRY(fuzz_safetensors)
