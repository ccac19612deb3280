/*
 * plugin.c — the "pretrain" plugin: language models from scratch.
 *
 *   bpe-train  learn a byte-level BPE vocabulary from text files -> tokenizer
 *   pretrain   train a GPT-2-architecture causal LM on text files -> lm
 */
#include "config.h"

#include "stages.h"

/* Filled when the plugin is loaded: each stage is defined in its own file,
 * and C cannot copy an extern struct into a static initializer. */
static lmp_stage_def stages[3];

__attribute__((constructor)) static void fill_stages(void)
{
    stages[0] = pretrain_bpe_train_stage;
    stages[1] = pretrain_stage;
}

LMP_PLUGIN_DEFINE("pretrain", PACKAGE_VERSION,
                  "language models from scratch: BPE vocabulary, GPT-2 pretraining", stages);
