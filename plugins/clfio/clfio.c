/*
 * clfio.c — the "classifier-io" plugin: classifiers to and from folders,
 * so a teacher trained once (e.g. GPT-2 + LoRA on CoLA) can be saved and
 * distilled from in later runs without training it again.
 *
 *   save-classifier  path=DIR   writes the wired classifier (its kind's
 *                               format: classifier.json + tensors)
 *   load-classifier  path=DIR   reads one back (any registered kind)
 *
 * A loaded classifier's digest, which identifies it for the stage cache and
 * for kd's cache of teacher logits, is the hash of the folder's files
 * (names and contents), so re-saving a different model in the same place
 * is noticed.  A GPT-2 classifier saved over an unchanged base checkpoint
 * keeps the base outside the folder (classifier.json records its path and
 * SHA-256, and loading refuses another base): the base's digest is then
 * part of the classifier's, so teacher logits computed over one base are
 * never served for another.
 *
 * save-classifier records every file it wrote into the folder as an
 * artifact with its SHA-256 (classifier.json, the head, the adapters, the
 * body), so the store says which run's weights the folder holds.
 */
#include "config.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "classifier.h"
#include "dist.h"
#include "gpt2_classifier.h"
#include "lmpipe.h"
#include "util.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Hash every regular file below root/rel: "relative name\0sha256\n", in name order. */
static int hash_dir(const char *root, const char *rel, lmp_sha256 *h)
{
    char *path = rel ? lmp_strfmt("%s/%s", root, rel) : strdupCheck(root);
    DIR *dir = opendir(path);
    if (!dir) {
        lmp_error("%s: cannot read the folder", path);
        free(path);
        return -1;
    }
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (n == cap) names = reallocCheck(names, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *names);
        names[n++] = strdupCheck(e->d_name);
    }
    closedir(dir);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n && rc == 0; i++) {
        char *sub = rel ? lmp_strfmt("%s/%s", rel, names[i]) : strdupCheck(names[i]);
        char *full = lmp_strfmt("%s/%s", root, sub);
        struct stat sb;
        if (stat(full, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            rc = hash_dir(root, sub, h);
        } else if (stat(full, &sb) == 0 && S_ISREG(sb.st_mode)) {
            char hex[65];
            int64_t bytes;
            if ((rc = lmp_sha256_file(full, hex, &bytes)) == 0) {
                lmp_sha256_update(h, sub, strlen(sub) + 1);
                lmp_sha256_update(h, hex, 64);
            }
        }
        free(sub), free(full);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names), free(path);
    return rc;
}

static const lmp_param load_params[] = {
    {"path", LMP_PATH, NULL, LMP_UNBOUNDED, NULL, "a folder written by save-classifier (or a classifier's save)"},
    LMP_PARAM_END,
};
static const lmp_port load_out[] = {{"model", "classifier", 0, "the classifier"}, LMP_PORT_END};

static int load_run(lmp_stage *st)
{
    const char *path = lmp_param_str(st, "path");
    lmp_sha256 h;
    lmp_sha256_init(&h);
    lmp_sha256_update(&h, "lmpipe-classifier-folder-v1\n", 28);
    if (hash_dir(path, NULL, &h) != 0) return -1;
    lmp_classifier *c;
    if (lmp_classifier_load(path, &c) != 0) return -1;
    const char *base, *base_sha;
    int verified;
    if (lmp_gpt2_classifier_base(c, &base, &base_sha, &verified)) {
        /* the weights outside the folder are part of what it computes */
        lmp_sha256_update(&h, "base\n", 5);
        lmp_sha256_update(&h, base_sha, 64);
        if (!verified)
            lmp_warn(st, "%s/classifier.json records no digest of its base %s (saved by an older lmpipe): cannot "
                     "verify that it is the base the classifier was trained over (its weights' sha256 now %s)",
                     path, base, base_sha);
    }
    char digest[65];
    lmp_sha256_final(&h, digest);
    lmp_info(st, "%s classifier with %d labels from %s (%.12s)", c->kind, c->num_labels, path, digest);
    lmp_log_param(st, "folder_digest", digest);
    if (lmp_output(st, "model", c) != 0) return -1;
    return lmp_output_digest(st, "model", digest);
}

static const lmp_param save_params[] = {
    {"path", LMP_PATH, NULL, LMP_UNBOUNDED, NULL, "folder to write (created; files in it are replaced)"},
    LMP_PARAM_END,
};
static const lmp_port save_in[] = {{"model", "classifier", 0, "the classifier to save"}, LMP_PORT_END};

/* A file in a folder, as far as telling whether it was written goes: an
 * atomic write gives a new inode, one in place a new size or times. */
typedef struct {
    char *rel;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
} file_id;

typedef struct {
    file_id *f;
    int n, cap;
} file_list;

static void file_list_free(file_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->f[i].rel);
    free(l->f);
}

static int cmp_rel(const void *a, const void *b)
{
    return strcmp(((const file_id *)a)->rel, ((const file_id *)b)->rel);
}

/* Every regular file below root/rel (a missing root: none), unsorted. */
static void list_files(const char *root, const char *rel, file_list *l, int depth)
{
    char *path = rel ? lmp_strfmt("%s/%s", root, rel) : strdupCheck(root);
    DIR *dir = depth < 32 ? opendir(path) : NULL;
    for (struct dirent *e; dir && (e = readdir(dir));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *sub = rel ? lmp_strfmt("%s/%s", rel, e->d_name) : strdupCheck(e->d_name);
        char *full = lmp_strfmt("%s/%s", root, sub);
        struct stat sb;
        if (lstat(full, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            list_files(root, sub, l, depth + 1);
        } else if (lstat(full, &sb) == 0 && S_ISREG(sb.st_mode)) {
            if (l->n == l->cap) l->f = reallocCheck(l->f, (size_t)(l->cap = l->cap ? 2 * l->cap : 16) * sizeof *l->f);
            l->f[l->n++] = (file_id){sub, sb.st_dev, sb.st_ino, sb.st_size, sb.st_mtim, sb.st_ctim};
            sub = NULL; /* the list owns it now */
        }
        free(sub), free(full);
    }
    if (dir) closedir(dir);
    free(path);
}

static int same_id(const file_id *a, const file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Record each file of `after` that `before` lacks or had otherwise: what
 * this save wrote.  Files it left alone are named in one warning, since a
 * loader may read them (an adapter from an earlier save, say). */
static int log_written(lmp_stage *st, const char *path, file_list *before, file_list *after)
{
    qsort(after->f, (size_t)after->n, sizeof *after->f, cmp_rel);
    int rc = 0, kept = 0;
    const char *first_kept = NULL;
    for (int i = 0; i < after->n && rc == 0; i++) {
        const file_id *a = &after->f[i], *b = NULL;
        for (int k = 0; k < before->n && !b; k++)
            if (strcmp(before->f[k].rel, a->rel) == 0) b = &before->f[k];
        if (b && same_id(a, b)) {
            if (!kept++) first_kept = a->rel;
            continue;
        }
        char *full = lmp_strfmt("%s/%s", path, a->rel);
        rc = lmp_log_artifact(st, a->rel, full);
        free(full);
    }
    if (rc == 0 && kept)
        lmp_warn(st, "%s holds %d file(s) this save did not write (%s%s): left from before, and a loader may read them",
                 path, kept, first_kept, kept > 1 ? ", ..." : "");
    return rc;
}

static int save_run(lmp_stage *st)
{
    const char *path = lmp_param_str(st, "path");
    lmp_classifier *c = lmp_input(st, "model");
    if (!lmp_dist_writer()) return 0; /* under mpirun rank 0 writes files (dist.h) */
    file_list before = {0}, after = {0};
    list_files(path, NULL, &before, 0);
    int rc = lmp_type_classifier.save(c, path);
    if (rc == 0) {
        list_files(path, NULL, &after, 0);
        rc = log_written(st, path, &before, &after);
    }
    file_list_free(&before);
    file_list_free(&after);
    if (rc == 0) lmp_info(st, "saved the %s classifier to %s", c->kind, path);
    return rc;
}

static const lmp_stage_def stages[] = {
    {.name = "load-classifier", .description = "a saved classifier (any kind) from its folder",
     .params = load_params, .produces = load_out, .run = load_run},
    {.name = "save-classifier", .description = "write a classifier to a folder that load-classifier reads",
     .params = save_params, .consumes = save_in, .run = save_run},
    {0},
};

LMP_PLUGIN_DEFINE("classifier-io", PACKAGE_VERSION, "save and load classifiers", stages);
