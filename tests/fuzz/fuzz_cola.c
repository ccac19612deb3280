/*
 * fuzz_cola.c — the CoLA TSV reader (core/kit/dataset.h lmp_cola_read) on
 * arbitrary bytes.  Properties: no crash or leak; a rejected file leaves a
 * one-line message and the split untouched; an accepted one gives one
 * example per line, each a valid UTF-8 sentence with label 0 or 1.
 */
#include "config.h"

#include <string.h>

#include "dataset.h"
#include "fuzz.h"
#include "util.h"

int fuzz_cola(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("in_domain_train.tsv", data, size);
    lmp_dataset *d = lmp_dataset_new("cola", 2);
    lmp_split *s = lmp_dataset_add_split(d, "train");
    fuzz_clear_error();
    if (lmp_cola_read(path, s) != 0) {
        fuzz_check_errmsg("cola");
        if (s->n != 0) fuzz_fail("cola", "a rejected file added %d examples", s->n);
    } else {
        size_t lines = 0;
        for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
        if (size && data[size - 1] != '\n') lines++;
        if ((size_t)s->n != lines) fuzz_fail("cola", "%d examples from %zu lines", s->n, lines);
        for (int i = 0; i < s->n; i++) {
            if (s->label[i] != 0 && s->label[i] != 1) fuzz_fail("cola", "label %d", s->label[i]);
            if (!lmp_utf8_valid(s->text[i], strlen(s->text[i]), NULL)) fuzz_fail("cola", "invalid UTF-8 kept");
        }
        lmp_dataset_update_digest(d);
    }
    lmp_dataset_free(d);
    return 0;
}
LMP_FUZZ_ENTRY(fuzz_cola)
