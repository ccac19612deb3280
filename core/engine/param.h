/*
 * param.h — typed stage parameters: parse a textual value against its
 * declaration (type, range, choices), and suggest the closest valid key.
 */
#ifndef LMP_PARAM_H
#define LMP_PARAM_H

#include "lmpipe.h"

typedef struct {
    const lmp_param *spec;
    char *text;  /* canonical text, as stored in the params table */
    int64_t i;   /* LMP_INT, LMP_BOOL */
    double f;    /* LMP_FLOAT (and LMP_INT as double) */
    int is_set;  /* given in the pipeline or on the command line */
} lmp_param_value;

/* Parse `text` for `spec` into `out` (out->text is newly allocated).  On error
 * the message says what is wrong with the value, without location. */
int lmp_param_parse(const lmp_param *spec, const char *text, lmp_param_value *out);
const lmp_param *lmp_param_find(const lmp_param *list, const char *key);
/* An LMP_FILES value's files (lmp_param_files): the list, or for '' the
 * spec's default files in $LMPIPE_DATA_DIR; each must be readable. */
int lmp_files_resolve(const lmp_param *spec, const char *text, char ***files, int *n);
/* The declared key closest to `key` (edit distance), or NULL if none is close. */
const char *lmp_param_suggest(const lmp_param *list, const char *key);
const char *lmp_ptype_name(lmp_ptype t);
/* "[1, 100]", "a|b|c", or "" — for messages and `lmpipe inspect`. */
void lmp_param_range_str(const lmp_param *spec, char *buf, size_t size);

#endif
