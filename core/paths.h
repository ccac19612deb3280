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

#endif
