/*
 * ckptdir.h — replace a whole directory atomically (training checkpoints):
 * write every file into a fresh DIR.tmp.PID.XXXXXX/, then swap it in.  At
 * every moment DIR is either the complete previous version or the complete
 * new one, so an interrupted save never destroys the last good checkpoint.
 *
 *     char *tmp;
 *     if (lmp_ckptdir_begin(dir, &tmp) != 0) return -1;
 *     ... write files into tmp (lmp_write_file_atomic fsyncs each) ...
 *     if (failed) { lmp_ckptdir_abort(tmp); return -1; }
 *     return lmp_ckptdir_commit(dir, tmp);   // frees tmp
 *
 * Commit fsyncs the new directory, then exchanges it with DIR
 * (renameat2 RENAME_EXCHANGE; plain rename when DIR does not exist yet),
 * fsyncs the parent and removes the old version.  Where the filesystem has
 * no exchange, DIR is first renamed to DIR.old.PID and then replaced:
 * lmp_ckptdir_recover puts such a leftover back if a crash fell between
 * the two renames.
 */
#ifndef LMP_CKPTDIR_H
#define LMP_CKPTDIR_H

/* Create an empty DIR.tmp.PID.XXXXXX of a fresh name (and DIR's parents),
 * removing stale ones of this process; DIR itself must be absent or a
 * directory (util.h, lmp_output_dir_check). */
int lmp_ckptdir_begin(const char *dir, char **tmp);
/* Swap tmp in as dir; frees tmp.  On failure tmp is removed and dir untouched. */
int lmp_ckptdir_commit(const char *dir, char *tmp);
/* Remove tmp and free it. */
void lmp_ckptdir_abort(char *tmp);
/* If dir is missing but a DIR.old.* left by an interrupted fallback commit
 * exists, rename it back.  Returns 1 if dir exists afterwards, else 0. */
int lmp_ckptdir_recover(const char *dir);
/* rm -rf path (no error if it does not exist). */
int lmp_remove_tree(const char *path);

#endif
