/*
 * tokenizer.c — the "tokenizer" artifact type (see tokenizer.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokenizer.h"
#include "util.h"

#define MAX_VOCAB_FILE (64u << 20)

static int digest_files(const char *a, const char *b, char out[65])
{
    lmp_sha256 h;
    lmp_sha256_init(&h);
    const char *files[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        char *data;
        size_t n;
        if (lmp_read_file(files[i], MAX_VOCAB_FILE, &data, &n) != 0) return -1;
        lmp_sha256_update(&h, data, n);
        free(data);
    }
    lmp_sha256_final(&h, out);
    return 0;
}

int lmp_tokenizer_load(const char *dir, lmp_tokenizer **out)
{
    *out = NULL;
    static const char *const pairs[2][2] = {{"vocab.json", "merges.txt"}, {"encoder.json", "vocab.bpe"}};
    lmp_bpe *bpe;
    if (lmp_bpe_load_dir(dir, &bpe) != 0) return -1;
    lmp_tokenizer *t = callocCheck(1, sizeof *t);
    t->bpe = bpe;
    for (int i = 0; i < 2 && !t->vocab_path; i++) {
        char *v = lmp_strfmt("%s/%s", dir, pairs[i][0]), *m = lmp_strfmt("%s/%s", dir, pairs[i][1]);
        if (access(v, R_OK) == 0 && access(m, R_OK) == 0) {
            t->vocab_path = v, t->merges_path = m;
        } else {
            free(v), free(m);
        }
    }
    if (!t->vocab_path || digest_files(t->vocab_path, t->merges_path, t->digest) != 0) {
        if (!t->vocab_path) lmp_error("%s: tokenizer files disappeared while loading", dir);
        lmp_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

static int copy_file(const char *from, const char *to)
{
    char *data;
    size_t n;
    if (lmp_read_file(from, MAX_VOCAB_FILE, &data, &n) != 0) return -1;
    int rc = lmp_write_file_atomic(to, data, n);
    free(data);
    return rc;
}

int lmp_tokenizer_save(const lmp_tokenizer *t, const char *dir)
{
    if (lmp_mkdirs(dir) != 0) return -1;
    char *v = lmp_strfmt("%s/vocab.json", dir), *m = lmp_strfmt("%s/merges.txt", dir);
    int rc = copy_file(t->vocab_path, v);
    if (rc == 0) rc = copy_file(t->merges_path, m);
    free(v), free(m);
    return rc;
}

void lmp_tokenizer_free(lmp_tokenizer *t)
{
    if (!t) return;
    lmp_bpe_free(t->bpe);
    free(t->vocab_path);
    free(t->merges_path);
    free(t);
}

static void type_free(void *v) { lmp_tokenizer_free(v); }
static int type_save(const void *v, const char *path) { return lmp_tokenizer_save(v, path); }
static int type_load(const char *path, void **v) { return lmp_tokenizer_load(path, (lmp_tokenizer **)v); }

const lmp_type lmp_type_tokenizer = {"tokenizer", "a byte-level BPE vocabulary (vocab.json + merges.txt)",
                                     type_free, type_save, type_load};
