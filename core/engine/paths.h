/*
 * paths.h — where lmpipe finds its data: the data folder ($LMPIPE_DATA_DIR,
 * else the copy lmpipe ships: data/ of the source tree when lmpipe runs from
 * its build tree, $(pkgdatadir)/data when installed), and the manifests
 * (SHA256SUMS, sha256sum's format) that vouch for the shipped files.
 */
#ifndef LMP_PATHS_H
#define LMP_PATHS_H

/* Whether this process runs from the build tree it was built in. */
int lmp_running_from_build_tree(void);

/* The data folder lmpipe ships: LMP_SRCDIR/data from a build tree, else
 * LMP_PKGDATADIR/data.  Static storage. */
const char *lmp_data_dir_default(void);
/* The data folder in use: $LMPIPE_DATA_DIR when set and not empty, else the
 * shipped one.  Static storage or the environment's. */
const char *lmp_data_dir(void);

/* `rel` (e.g. "gpt2", "cola/in_domain_dev.tsv") in $LMPIPE_DATA_DIR when it
 * is there, else in the shipped data folder (so an error names that one).
 * Caller frees. */
char *lmp_data_path(const char *rel);

/* Sets $LMPIPE_DATA_DIR to the data folder in use, canonicalised (when it
 * exists): pipelines expand ${LMPIPE_DATA_DIR} into parameters that stage
 * keys hash, so "data", "/abs/x/../data" and a symlink to it must name the
 * same files, and the default must be what every stage and sub-run sees.
 * The lmpipe command calls it at start-up. */
void lmp_data_dir_resolve(void);

/* Checks `path` against the manifest beside it: when its folder holds a
 * SHA256SUMS that lists the file's name, the file's SHA-256 must match.
 * Files no manifest lists pass (a user's own data).  0, or -1 with a
 * message naming the file, both digests and the manifest. */
int lmp_data_verify(const char *path);

#endif
