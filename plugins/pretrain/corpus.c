/*
 * corpus.c — the pretraining corpus: the cached token stream (see
 * corpus.h).  Cache file: "LMPTOK01", uint64 count, int32 ids[count]
 * (native byte order), written atomically.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corpus.h"
#include "dist.h"
#include "util.h"

static const char magic[8] = { 'L', 'M', 'P', 'T', 'O', 'K', '0', '1' };

static int cache_read(const char *path, int V, int **ids, size_t *n)
{
    char *buf;
    size_t len;
    if (access(path, R_OK) != 0 || lmp_read_file(path, 0, &buf, &len) != 0) return -1;
    uint64_t count = 0;
    int ok = len >= 16 && memcmp(buf, magic, 8) == 0;
    if (ok) {
        memcpy(&count, buf + 8, 8);
        ok = count <= (len - 16) / 4 && len == 16 + count * 4;
    }
    int *out = NULL;
    if (ok) {
        out = mallocCheck((count ? count : 1) * sizeof *out);
        memcpy(out, buf + 16, count * 4);
        for (uint64_t i = 0; i < count && ok; i++) ok = out[i] >= 0 && out[i] < V;
    }
    free(buf);
    if (!ok) {
        free(out);
        return -1;
    }
    *ids = out;
    *n = count;
    return 0;
}

int corpus_tokens(lmp_stage *st, lmp_tokenizer *tok, char **files, int nfiles, int **ids,
                  size_t *n, int *hit)
{
    *ids = NULL;
    *n = 0;
    *hit = 0;
    lmp_sha256 h;
    lmp_sha256_init(&h);
    lmp_sha256_update(&h, "lmpipe-tokens-v1", 17);
    lmp_sha256_update(&h, tok->digest, 64);
    for (int i = 0; i < nfiles; i++) {
        char fh[65];
        if (lmp_sha256_file_memo(files[i], fh) != 0) return -1; /* the stage key hashed it already */
        lmp_sha256_update(&h, fh, 64);
    }
    char key[65];
    lmp_sha256_final(&h, key);
    char *path = lmp_strfmt("%s/tokens/%s.bin", lmp_cachedir(st), key);
    int V = lmp_bpe_vocab_size(tok->bpe);
    if (cache_read(path, V, ids, n) == 0) {
        *hit = 1;
        free(path);
        return 0;
    }
    int eot = lmp_bpe_eot(tok->bpe);
    int *out = NULL;
    size_t count = 0, cap = 0;
    int rc = 0;
    for (int i = 0; i < nfiles && rc == 0; i++) {
        char *text;
        size_t len;
        if ((rc = lmp_read_text_file(files[i], 0, &text, &len)) != 0) break;
        rc = lmp_bpe_encode_append(tok->bpe, text, len, 0, &out, &count, &cap);
        free(text);
        if (rc == 0 && eot >= 0) {
            if (count == cap) {
                cap = cap ? 2 * cap : 1024;
                out = reallocCheck(out, cap * sizeof *out);
            }
            out[count++] = eot;
        }
        lmp_progress(st, "tokenize files", i + 1, nfiles);
    }
    if (rc == 0 && lmp_dist_writer()) { /* under mpirun rank 0 writes the caches */
        char *dir = lmp_strfmt("%s/tokens", lmp_cachedir(st));
        lmp_atomic_file af;
        uint64_t c64 = count;
        if (lmp_mkdirs(dir) == 0 && lmp_atomic_open(&af, path) == 0) {
            lmp_atomic_write(&af, magic, 8);
            lmp_atomic_write(&af, &c64, 8);
            lmp_atomic_write(&af, out, count * sizeof *out);
            if (lmp_atomic_commit(&af) != 0) lmp_warn(st, "token cache not written: %s", lmp_errmsg());
        } else {
            lmp_warn(st, "token cache not written: %s", lmp_errmsg());
        }
        free(dir);
    }
    free(path);
    if (rc != 0) {
        free(out);
        return -1;
    }
    *ids = out;
    *n = count;
    return 0;
}
