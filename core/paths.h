/*
 * paths.h — where lmpipe finds its data files: $LMPIPE_DATA_DIR, then (when
 * the command runs from its build tree) the source tree's data/ and the
 * ../shared/data beside it, then the installed $(pkgdatadir).
 */
#ifndef LMP_PATHS_H
#define LMP_PATHS_H

/* Whether this process runs from the build tree it was built in. */
int lmp_running_from_build_tree(void);
/* The first existing of the places above for `rel` (e.g. "gpt2", "cola");
 * if none exists, the installed location (so an error names it).  Caller frees. */
char *lmp_data_path(const char *rel);

/* Unset, $LMPIPE_DATA_DIR becomes ../shared/data beside the source tree
 * when lmpipe runs from a build tree that has it.  Then it is replaced by
 * its canonical absolute path (when it exists):
 * "../shared/data", "/abs/../shared/data" and a symlink to it name the same
 * files, and pipelines expand ${LMPIPE_DATA_DIR} into parameters that stage
 * keys hash — so one spelling keeps the cache (the default base model) found
 * whatever another command used.  The lmpipe command calls it at start-up. */
void lmp_data_dir_resolve(void);

#endif
