/*
 * fuzz_gpt2.c — GPT-2 checkpoint loading (core/nn/gpt2.h lmp_gpt2_load) on
 * arbitrary bytes: the first byte picks llm.c's .bin format (even) or a bare
 * .safetensors file with its config in __metadata__ (odd); the rest is the
 * file.  Properties: no crash, no out-of-bounds read, no leak; a model that
 * loads has every weight inside the file: a forward pass and the logits of
 * the last position touch all of them, and give finite numbers only if the
 * weights are (they are not checked, so only "no fault" is asserted).
 */
#include "config.h"

#include <stdlib.h>

#include "fuzz.h"
#include "gpt2.h"
#include "util.h"

int fuzz_gpt2(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    const char *path = fuzz_file(data[0] & 1 ? "model.safetensors" : "model.bin", data + 1, size - 1);
    lmp_gpt2 *m;
    fuzz_clear_error();
    if (lmp_gpt2_load(path, &m) != 0) {
        fuzz_check_errmsg("gpt2");
        return 0;
    }
    int T = m->config.n_ctx < 3 ? m->config.n_ctx : 3, ids[3];
    for (int t = 0; t < T; t++) ids[t] = (t * 7) % m->config.vocab_size;
    float *logits = mallocCheck((size_t)m->config.vocab_size * sizeof *logits);
    int last = T - 1;
    if (lmp_gpt2_logits(m, ids, 1, T, &last, 1, logits) != 0)
        fuzz_fail("gpt2", "a loaded model failed its forward pass: %s", lmp_errmsg());
    free(logits);
    lmp_gpt2_free(m);
    return 0;
}
LMP_FUZZ_ENTRY(fuzz_gpt2)
