/*
 * gpt2_classifier.h — GPT-2 for sequence classification (core/kit/classifier.h),
 * as Hugging Face's GPT2ForSequenceClassification: the GPT-2 body, then a
 * linear head `score` [num_labels, C] without bias (nn.Linear layout) on
 * the final-LayerNorm hidden state of the last real token of each row
 * (position len[b] - 1; padded keys are masked in attention).
 *
 * Adapters (core/nn/adapter.h) attach to the body's linear layers through
 * c->adapters(c), whose host has prefix "transformer." (HF module names
 * "transformer.h.0.attn.c_attn").  The parameter group holds the body's
 * tensors under GPT2Model names (frozen when the host's freeze_base is set,
 * as the lora stage does), "score.weight", and the adapters' tensors.
 *
 * Saved folder:
 *   classifier.json   {"kind": "gpt2", num_labels, tokenizer_digest, freeze_base,
 *                      "base": "model" | {"path", "bytes", "sha256"},
 *                      "adapters": [kinds, in the order saved] (with adapters)}
 *   model/            the body (lmp_gpt2_save), unless it is unchanged from a
 *                     file (then only its path, size and the SHA-256 of its
 *                     weights file are recorded, and loading refuses a base
 *                     that differs; a record without sha256, from an older
 *                     lmpipe, loads unverified)
 *   each adapter kind's files (lmp_adapter_ops save/load, core/nn/adapter.h):
 *     adapter_config.json + adapter_model.safetensors   with LoRA: the PEFT
 *                     folder, score in it as base_model.model.score.weight
 *     (a folder without "adapters" but with these is LoRA's: older lmpipe)
 *   score.safetensors when no adapter kind keeps the head: {"score.weight"}
 */
#ifndef LMP_GPT2_CLASSIFIER_H
#define LMP_GPT2_CLASSIFIER_H

#include "classifier.h"
#include "gpt2.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A classifier around m (owned from now on) with a zero head.  base_path:
 * the file or folder m was loaded from (NULL when it was not, e.g. random).
 * Errors: num_labels < 1. */
int lmp_gpt2_classifier_new(lmp_gpt2 *m, int num_labels, const char *base_path, lmp_classifier **out);
/* score.weight ~ N(0, std) from a generator seeded with `seed`. */
void lmp_gpt2_classifier_init_head(lmp_classifier *c, float std, uint64_t seed);
/* The parts, or NULL when c is not a GPT-2 classifier. */
lmp_gpt2 *lmp_gpt2_classifier_model(lmp_classifier *c);
float *lmp_gpt2_classifier_head(lmp_classifier *c); /* [num_labels, C] */
/* 1 when c was loaded from a folder that refers to a base checkpoint
 * outside it: the base's path, the SHA-256 of its weights file, and
 * whether classifier.json recorded that digest (0: saved by an older
 * lmpipe, so nothing says it is the base the classifier was trained over).
 * 0 otherwise (the body is in the folder, or c was not loaded). */
int lmp_gpt2_classifier_base(lmp_classifier *c, const char **path, const char **sha256, int *verified);
/* Load a folder written by c->save. */
int lmp_gpt2_classifier_load(const char *dir, lmp_classifier **out);

#ifdef __cplusplus
}
#endif

#endif
