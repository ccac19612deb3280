/*
 * kit_types.c — the kit's artifact types (tokenizer, dataset, classifier,
 * lm) join the engine's built-in types when liblmpipe loads.  The engine
 * sits below the kit and cannot name them; a constructor is how a layer
 * above registers itself without an upward include (the library is built
 * shared only: LT_INIT disable-static, so this object is always linked).
 */
#include "config.h"

#include "classifier.h"
#include "dataset.h"
#include "lm.h"
#include "tokenizer.h"
#include "types.h"

__attribute__((constructor)) static void kit_types_register(void)
{
    lmp_type_add_builtin(&lmp_type_tokenizer);
    lmp_type_add_builtin(&lmp_type_dataset);
    lmp_type_add_builtin(&lmp_type_classifier);
    lmp_type_add_builtin(&lmp_type_lm);
}
