/*
 * optim_params.c — the optimizer's stage parameters into lmp_optim_opts
 * (see optim_params.h).
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "optim_params.h"
#include "util.h"

int lmp_optim_opts_read(lmp_stage *st, lmp_optim_opts *o, int flags)
{
    lmp_optim_opts_default(o);
    o->adamw = strcmp(lmp_param_str(st, "optimizer"), "adamw") == 0;
    o->lr = lmp_param_float(st, "lr");
    o->weight_decay = lmp_param_float(st, "weight_decay");
    o->beta1 = lmp_param_float(st, "beta1");
    o->beta2 = lmp_param_float(st, "beta2");
    o->eps = lmp_param_float(st, "eps");
    o->clip = lmp_param_float(st, "clip");
    if (lmp_lr_schedule_parse(lmp_param_str(st, "schedule"), &o->schedule) != 0) return -1;

    /* min_lr absolute when set, else a fraction of lr (0 by default in train and kd) */
    if (lmp_param_is_set(st, "min_lr") && lmp_param_is_set(st, "min_lr_ratio"))
        return lmp_error("min_lr and min_lr_ratio are both set: give one (the final learning rate, or its "
                         "fraction of lr)");
    o->min_lr = lmp_param_is_set(st, "min_lr") ? lmp_param_float(st, "min_lr")
                                                : o->lr * lmp_param_float(st, "min_lr_ratio");

    /* warmup: a fraction when set, else warmup_steps (set, or the stage's default) */
    int frac_set = lmp_param_is_set(st, "warmup");
    if (frac_set && lmp_param_is_set(st, "warmup_steps"))
        return lmp_error("warmup and warmup_steps are both set: give one (a fraction of all steps, or a count)");
    double w = lmp_param_float(st, "warmup");
    if (frac_set && w > 1 && !(flags & LMP_OPTIM_OLD_SPELLINGS))
        return lmp_error("warmup %g: a fraction of all steps, in [0, 1] (warmup_steps counts steps)", w);
    if (frac_set && w >= 1 && (flags & LMP_OPTIM_OLD_SPELLINGS)) {
        if (w != floor(w))
            return lmp_error("warmup %g: a fraction of all steps is in [0, 1), a step count a whole number "
                             "(better: warmup_steps)", w);
        lmp_warn(st, "warmup=%.0f as a step count is deprecated (removed in the next release): use "
                 "warmup_steps=%.0f (warmup is a fraction of all steps)", w, w);
        o->warmup_steps = (int)w;
    } else if (frac_set) {
        o->warmup = w;
        o->warmup_steps = -1;
    } else {
        o->warmup_steps = (int)lmp_param_int(st, "warmup_steps");
    }

    o->skip_nonfinite = strcmp(lmp_param_str(st, "on_nonfinite"), "skip") == 0;
    if ((flags & LMP_OPTIM_OLD_SPELLINGS) && lmp_param_is_set(st, "skip_nonfinite")) {
        if (lmp_param_is_set(st, "on_nonfinite"))
            return lmp_error("skip_nonfinite (deprecated) and on_nonfinite are both set: give on_nonfinite");
        o->skip_nonfinite = lmp_param_bool(st, "skip_nonfinite");
    }
    return 0;
}
