/*
 * stages.h — the stages of the pretrain plugin, defined one per file.
 */
#ifndef PRETRAIN_STAGES_H
#define PRETRAIN_STAGES_H

#include "lmpipe.h"

extern const lmp_stage_def pretrain_bpe_train_stage; /* bpe_train.c */
extern const lmp_stage_def pretrain_stage;           /* pretrain.c */

#endif
