/*
 * ckptdir.c — atomic replacement of a directory (see ckptdir.h).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckptdir.h"
#include "util.h"

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT ? -1 : 0;
}

int lmp_remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) return errno == ENOENT ? 0 : lmp_error("%s: %s", path, strerror(errno));
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return lmp_error("%s: cannot remove: %s", path, strerror(errno));
    return 0;
}

static void fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

static void fsync_parent(const char *path)
{
    char *copy = strdupCheck(path);
    fsync_path(dirname(copy));
    free(copy);
}

/* Remove what an earlier save of this process left (DIR.tmp.PID.*, and
 * DIR.tmp.PID of older versions): another process's may be in progress. */
static void remove_own_stale(const char *dir)
{
    char *copy = strdupCheck(dir), *base = strdupCheck(dir);
    const char *parent = dirname(copy), *name = basename(base);
    char *prefix = lmp_strfmt("%s.tmp.%ld", name, (long)getpid());
    size_t n = strlen(prefix);
    DIR *d = opendir(parent);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, n) != 0 || (e->d_name[n] != 0 && e->d_name[n] != '.')) continue;
        char *old = lmp_strfmt("%s/%s", parent, e->d_name);
        lmp_remove_tree(old); /* does not follow links */
        free(old);
    }
    if (d) closedir(d);
    free(prefix), free(copy), free(base);
}

int lmp_ckptdir_begin(const char *dir, char **tmp)
{
    /* a fresh name (not DIR.tmp.PID: a link planted there would receive
     * the files), and DIR must be a folder it may replace */
    char *copy = strdupCheck(dir);
    int rc = lmp_mkdirs(dirname(copy));
    free(copy);
    if (rc == 0) remove_own_stale(dir);
    *tmp = rc == 0 && lmp_output_dir_check(dir) == 0 ? lmp_temp_dir(dir) : NULL;
    return *tmp ? 0 : -1;
}

void lmp_ckptdir_abort(char *tmp)
{
    if (!tmp) return;
    lmp_remove_tree(tmp);
    free(tmp);
}

int lmp_ckptdir_commit(const char *dir, char *tmp)
{
    /* the files were fsynced as they were written; now their directory entries */
    fsync_path(tmp);
    struct stat sb;
    int rc = 0;
    if (lmp_output_dir_check(dir) != 0) {
        rc = -1; /* exchanging would put the new folder in place of a file: the store, say */
    } else if (lstat(dir, &sb) != 0) {
        if (rename(tmp, dir) != 0) rc = lmp_error("%s: cannot rename into place: %s", dir, strerror(errno));
    } else if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
        /* tmp now holds the previous version */
    } else if (errno == EINVAL || errno == ENOSYS) {
        char *old = lmp_strfmt("%s.old.%ld", dir, (long)getpid());
        lmp_remove_tree(old);
        if (rename(dir, old) != 0)
            rc = lmp_error("%s: cannot move aside: %s", dir, strerror(errno));
        else if (rename(tmp, dir) != 0) {
            rc = lmp_error("%s: cannot rename into place: %s", dir, strerror(errno));
            rename(old, dir);
        }
        if (rc == 0) {
            fsync_parent(dir);
            lmp_remove_tree(old);
        }
        free(old);
    } else {
        rc = lmp_error("%s: cannot swap in the new version: %s", dir, strerror(errno));
    }
    if (rc == 0) fsync_parent(dir);
    lmp_remove_tree(tmp);
    free(tmp);
    return rc;
}

int lmp_ckptdir_recover(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) == 0) return 1;
    char *copy = strdupCheck(dir), *base = strdupCheck(dir);
    const char *parent = dirname(copy), *name = basename(base);
    char *prefix = lmp_strfmt("%s.old.", name);
    DIR *d = opendir(parent);
    int found = 0;
    for (struct dirent *e; d && !found && (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        char *old = lmp_strfmt("%s/%s", parent, e->d_name);
        found = rename(old, dir) == 0;
        free(old);
    }
    if (d) closedir(d);
    free(prefix);
    free(copy);
    free(base);
    return found;
}
