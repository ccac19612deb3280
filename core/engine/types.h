/*
 * types.h — artifact type registry (lmp_type_register / lmp_type_find are
 * declared in lmpipe.h) and the core's built-in types.
 */
#ifndef LMP_TYPES_H
#define LMP_TYPES_H

#include "lmpipe.h"

extern const lmp_type lmp_type_text; /* char * */

void lmp_types_init(void);
/* A type the library itself defines above the engine (core/kit), added to
 * the built-ins from a constructor when the library loads. */
void lmp_type_add_builtin(const lmp_type *t);
/* Back to the built-in types only (the registry calls it when it unloads plugins). */
void lmp_types_reset(void);
int lmp_type_count(void);
const lmp_type *lmp_type_at(int i);

#endif
