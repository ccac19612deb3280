/*
 * fuzz_lora.c — reading a PEFT adapter folder (core/nn/lora.h lmp_lora_load)
 * whose adapter_config.json is arbitrary bytes, next to the fixture's
 * adapter_model.safetensors, onto the tiny GPT-2 classifier.  Properties: no
 * crash, leak or hang (target_modules may be any regex); a rejected config
 * leaves a one-line message and attaches nothing; an accepted one attaches
 * LoRA with a valid config, and the classifier still runs forward.
 */
#include "config.h"

#include <stdlib.h>
#include <unistd.h>

#include "classifier.h"
#include "fuzz.h"
#include "gpt2.h"
#include "gpt2_classifier.h"
#include "lora.h"
#include "util.h"

static lmp_classifier *clf;
static char *dir;

static void setup(void)
{
    lmp_gpt2 *m;
    if (lmp_gpt2_load(fuzz_srcfile("tests/fixtures/gpt2/tiny-hf"), &m) != 0 ||
        lmp_gpt2_classifier_new(m, 2, "tiny-hf", &clf) != 0)
        fuzz_fail("lora", "cannot load the tiny GPT-2: %s", lmp_errmsg());
    dir = lmp_strfmt("%s/peft", fuzz_dir());
    char *st = lmp_strfmt("%s/adapter_model.safetensors", dir);
    if (lmp_mkdirs(dir) != 0 || symlink(fuzz_srcfile("tests/fixtures/lora/peft/adapter_model.safetensors"), st) != 0)
        fuzz_fail("lora", "cannot make %s", dir);
    free(st);
}

int fuzz_lora(const uint8_t *data, size_t size)
{
    static const char *const extra[] = {"score.weight", NULL};
    if (!clf) setup();
    fuzz_file("peft/adapter_config.json", data, size);
    lmp_adapter_host *h = clf->adapters(clf);
    lmp_lora_config cfg;
    lmp_st *st;
    fuzz_clear_error();
    if (lmp_lora_load(h, dir, extra, &cfg, &st) != 0) {
        fuzz_check_errmsg("lora");
        if (lmp_adapter_count(h, NULL) != 0) fuzz_fail("lora", "a rejected folder attached adapters");
        return 0;
    }
    if (lmp_lora_count(h) < 1 || cfg.rank < 1 || !(cfg.dropout >= 0 && cfg.dropout < 1))
        fuzz_fail("lora", "accepted an invalid config (rank %d, dropout %g)", cfg.rank, cfg.dropout);
    int ids[4] = {1, 2, 3, 0}, len[1] = {3};
    float logits[2];
    if (clf->forward(clf, ids, len, 1, 3, logits, 0) != 0)
        fuzz_fail("lora", "forward with the loaded adapters failed: %s", lmp_errmsg());
    lmp_st_close(st);
    lmp_adapter_host_free(h);
    return 0;
}
LMP_FUZZ_ENTRY(fuzz_lora)
