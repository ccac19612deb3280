/*
 * lora.h — LoRA (Hu et al. 2021) as an adapter kind (core/nn/adapter.h), with
 * the arithmetic and the files of Hugging Face PEFT:
 *
 *     out = x W + b + scaling * dropout(x) A^T B^T,   scaling = alpha / r
 *                                                     (rslora: alpha / sqrt(r))
 *
 * PEFT keeps lora_A as nn.Linear(in, r) (weight [r, in]) and lora_B as
 * nn.Linear(r, out) (weight [out, r]); we keep their transposes, A [in, r]
 * and B [r, out], so the kernels of nn.h apply as for every other layer, and
 * transpose when reading or writing PEFT files.  Initialisation as PEFT's
 * default: A ~ kaiming_uniform_(a=sqrt(5)) on the [r, in] weight, i.e.
 * U(-1/sqrt(in), 1/sqrt(in)), and B = 0, so a fresh adapter leaves the
 * model's output exactly unchanged ("gaussian": A ~ N(0, 1/r), as PEFT's
 * init_lora_weights="gaussian").  Dropout acts on the adapter's input in
 * training mode only; its mask is regenerated in backward from the saved RNG
 * state instead of being stored.
 *
 * A PEFT adapter folder holds adapter_config.json (peft_type "LORA", r,
 * lora_alpha, lora_dropout, target_modules, fan_in_fan_out, bias "none",
 * task_type, modules_to_save, use_rslora) and adapter_model.safetensors with
 * keys "base_model.model." + module name + ".lora_A.weight" / ".lora_B.weight"
 * (e.g. base_model.model.transformer.h.0.attn.c_attn.lora_A.weight [r, in]),
 * plus the modules_to_save weights under their module names
 * (base_model.model.score.weight).  PEFT loads what we write and we load what
 * PEFT writes (for GPT-2: Conv1D layers, fan_in_fan_out true).
 */
#ifndef LMP_LORA_H
#define LMP_LORA_H

#include "adapter.h"
#include "safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LMP_LORA_INIT_KAIMING = 0, LMP_LORA_INIT_GAUSSIAN } lmp_lora_init;

typedef struct {
    int rank;        /* r >= 1 */
    double alpha;    /* lora_alpha */
    int rslora;      /* scaling alpha / sqrt(r) instead of alpha / r */
    double dropout;  /* on the adapter input, training mode only, in [0, 1) */
    const char *targets; /* comma-separated patterns (lmp_adapter_match), or one regex */
    lmp_lora_init init;
    int targets_regex;   /* targets is PEFT's string form of target_modules: a
                          * regex matched in full against the HF module name
                          * ("transformer.h.0.attn.c_attn"); kept so a loaded
                          * regex is saved as itself, not escaped as a glob.
                          * Last, so the fields before keep their offsets */
} lmp_lora_config;

#define LMP_LORA_DEFAULT_TARGETS "attn.c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj"

float lmp_lora_scaling(const lmp_lora_config *c);

/* Attach a fresh LoRA adapter (A random from rng per c->init, B = 0) to every
 * layer of h that c->targets selects.  Errors: a pattern (or the regex)
 * matching nothing, rank < 1, dropout outside [0, 1), LoRA already attached
 * to h (one LoRA set per model). */
int lmp_lora_attach(lmp_adapter_host *h, const lmp_lora_config *c, lmp_rng *rng);

/* The LoRA adapters on h: how many, and the config they were made with
 * (NULL when there are none). */
int lmp_lora_count(const lmp_adapter_host *h);
const lmp_lora_config *lmp_lora_config_of(const lmp_adapter_host *h);
/* LoRA's A [in, r] and B [r, out] on layer l (NULL if l has none). */
int lmp_lora_weights(const lmp_linear *l, float **A, float **B, int *rank);

/* A tensor saved beside the LoRA weights (PEFT's modules_to_save), e.g.
 * {"score.weight", head, 2, {num_labels, C}}: written as
 * "base_model.model.score.weight". */
typedef struct {
    const char *name;
    const float *data;
    int ndim;
    int64_t shape[2];
} lmp_lora_extra;

/* Write the PEFT folder `dir` (created if needed): adapter_config.json and
 * adapter_model.safetensors.  target_modules is written as the targets were
 * given: a regex as that same string, names and dot-suffixes as a list, globs
 * as the equivalent regex.  task_type is PEFT's ("SEQ_CLS", or NULL);
 * base is written as base_model_name_or_path (may be NULL).  Errors: no LoRA
 * on h, or adapters of another kind attached (PEFT could not hold them). */
int lmp_lora_save(const lmp_adapter_host *h, const char *dir, const char *task_type, const char *base,
                  const lmp_lora_extra *extra, int n_extra);

/* Read the PEFT folder `dir` and attach its adapters to h.  Everything is
 * validated before anything is attached: the config (peft_type LORA, r,
 * lora_alpha, lora_dropout, target_modules as a list (names or dot-suffixes
 * of module names) or a string (a regex, targets_regex), bias
 * "none", no DoRA / rank_pattern / alpha_pattern / layers_to_transform),
 * every targeted layer's lora_A [r, in] and lora_B [out, r] (missing key,
 * shape, rank different from r, dtype F32), and that every key of the file
 * is a targeted layer's or one of `extra` (NULL-terminated names such as
 * "score.weight", which need not be present).  Errors are one line naming
 * the file and the key.  *cfg receives the config (its targets string stays
 * valid as long as h's adapters); *st, when not NULL, the open safetensors
 * file for reading the extra tensors (close it with lmp_st_close). */
int lmp_lora_load(lmp_adapter_host *h, const char *dir, const char *const *extra, lmp_lora_config *cfg,
                  lmp_st **st);

#ifdef __cplusplus
}
#endif

#endif
