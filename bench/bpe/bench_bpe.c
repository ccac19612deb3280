/* bench_bpe.c — times lmp_bpe_encode / lmp_bpe_decode on one text file with
 * one thread, for bench/bpe/run.sh.
 *
 *   bench_bpe VOCAB_DIR TEXT_FILE [IDS_OUT]
 * prints: load_s encode_s decode_s bytes tokens peak_rss_kb
 * and writes the ids (one per line) to IDS_OUT if given.  The tokenizer is
 * fresh, so the word cache starts empty. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bpe.h"
#include "util.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_bpe VOCAB_DIR TEXT_FILE [IDS_OUT]\n");
        return 2;
    }
    char *text, *back;
    size_t len, n, blen;
    int *ids;
    if (lmp_read_file(argv[2], 0, &text, &len) != 0) {
        fprintf(stderr, "bench_bpe: %s\n", lmp_errmsg());
        return 1;
    }
    double t0 = lmp_now();
    lmp_bpe *bpe;
    if (lmp_bpe_load_dir(argv[1], &bpe) != 0) {
        fprintf(stderr, "bench_bpe: %s\n", lmp_errmsg());
        return 1;
    }
    double t1 = lmp_now();
    if (lmp_bpe_encode(bpe, text, len, 0, &ids, &n) != 0) {
        fprintf(stderr, "bench_bpe: %s\n", lmp_errmsg());
        return 1;
    }
    double t2 = lmp_now();
    if (lmp_bpe_decode(bpe, ids, n, &back, &blen) != 0) {
        fprintf(stderr, "bench_bpe: %s\n", lmp_errmsg());
        return 1;
    }
    double t3 = lmp_now();
    if (blen != len || memcmp(back, text, len) != 0) {
        fprintf(stderr, "bench_bpe: decode(encode(text)) != text\n");
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%.4f %.4f %.4f %zu %zu %ld\n", t1 - t0, t2 - t1, t3 - t2, len, n, ru.ru_maxrss);
    if (argc > 3) {
        FILE *f = fopen(argv[3], "w");
        if (!f) {
            perror(argv[3]);
            return 1;
        }
        for (size_t i = 0; i < n; i++) fprintf(f, "%d\n", ids[i]);
        fclose(f);
    }
    free(ids);
    free(back);
    free(text);
    lmp_bpe_free(bpe);
    return 0;
}
