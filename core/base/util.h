/*
 * util.h — small helpers every part of lmpipe uses: checked allocation
 * (llm.c's mallocCheck style: out of memory is fatal with file and line),
 * the thread-local error message, SHA-256, atomic file writes, and file
 * reading with errors that name the file.
 */
#ifndef LMP_UTIL_H
#define LMP_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "errors.h"

/* Checked allocation: on failure print "out of memory (N bytes) at file:line"
 * and exit(1) -- or, while an out-of-memory hook is set, one line "out of
 * memory allocating N bytes in WHERE" after the hook ran. */
void *lmp_malloc_check(size_t size, const char *file, int line);
void *lmp_calloc_check(size_t n, size_t size, const char *file, int line);
void *lmp_realloc_check(void *p, size_t size, const char *file, int line);
char *lmp_strdup_check(const char *s, const char *file, int line);
#define mallocCheck(n) lmp_malloc_check((n), __FILE__, __LINE__)
#define callocCheck(n, s) lmp_calloc_check((n), (s), __FILE__, __LINE__)
#define reallocCheck(p, n) lmp_realloc_check((p), (n), __FILE__, __LINE__)
#define strdupCheck(s) lmp_strdup_check((s), __FILE__, __LINE__)

/* What a failed checked allocation reports, and whom it tells before the
 * process exits 1: the run executor (run.c) sets `where` to the running
 * stage and `hook` to a function that records the run as failed.  The hook
 * gets the whole message ("out of memory allocating N bytes in WHERE"); it
 * must not allocate much (the store's small SQLite allocations are fine once
 * the big one failed) and returns nonzero when it printed the message itself.
 * NULL hook and where: the plain message with file and line.  Returns the
 * previous settings through prev_* (may be NULL), to restore them. */
typedef int (*lmp_oom_hook)(const char *msg, void *arg);
void lmp_oom_set(lmp_oom_hook hook, void *arg, const char *where, lmp_oom_hook *prev_hook, void **prev_arg,
                 const char **prev_where);

/* printf into a new string (checked). */
char *lmp_strfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Read a whole file into a NUL-terminated buffer.  Errors name the file:
 * missing, a directory, unreadable, too large (> max_bytes if max_bytes > 0). */
int lmp_read_file(const char *path, size_t max_bytes, char **data, size_t *len);
/* The same for text that may be shipped compressed: a name ending in ".gz"
 * is read through zlib (max_bytes then bounds the decompressed size, so a
 * decompression bomb is an error, not an out-of-memory). */
int lmp_read_text_file(const char *path, size_t max_bytes, char **data, size_t *len);

/* Write `len` bytes to `path` atomically: temp file in the same directory,
 * fsync, rename, fsync of the directory.  An interrupted write leaves the old
 * file intact. */
int lmp_write_file_atomic(const char *path, const void *data, size_t len);

/* Outputs never destroy what they must not.  Every file lmpipe writes goes
 * through the atomic writer, every folder it writes into through lmp_mkdirs,
 * and both check the final path first:
 *   - a file may replace only a regular file (or nothing): a symbolic link, a
 *     device, a FIFO, a socket or a directory there is refused;
 *   - a folder must be a directory (a symbolic link to one is followed);
 *   - neither may be a protected file: the experiment store and its -wal,
 *     -shm and -journal, compared by device and inode (hard links) and by
 *     canonical path ("./a/../store.db", a not yet existing -wal).
 * The refusal is one line naming the path. */
void lmp_protect_file(const char *path); /* the store registers itself (store.c) */
int lmp_output_file_check(const char *path);
int lmp_output_dir_check(const char *path);

/* A new, empty file "PATH.tmp.PID.XXXXXX" beside `path`, created with
 * O_CREAT|O_EXCL|O_NOFOLLOW and mode 0666 & ~umask (what fopen gives): a
 * name planted in a shared folder (a symbolic link, say) is never opened,
 * another random name is tried.  Returns the open descriptor and the name
 * (*tmp_path, caller frees), or -1 with a message naming `path` (and errno
 * saying why). */
int lmp_temp_file(const char *path, char **tmp_path);
/* Same for a folder "PATH.tmp.PID.XXXXXX" (mode 0777 & ~umask); NULL on failure. */
char *lmp_temp_dir(const char *path);

/* Atomic writes of larger files in pieces. */
typedef struct {
    FILE *fp;
    char *path, *tmp_path;
    int failed;
} lmp_atomic_file;
int lmp_atomic_open(lmp_atomic_file *af, const char *path);
int lmp_atomic_write(lmp_atomic_file *af, const void *data, size_t len);
int lmp_atomic_commit(lmp_atomic_file *af); /* fsync + rename; frees af */
void lmp_atomic_abort(lmp_atomic_file *af); /* removes the temp file; frees af */

/* A growable string. */
typedef struct {
    char *s;
    size_t len, cap;
} lmp_sbuf;
void lmp_sbuf_putn(lmp_sbuf *b, const char *s, size_t n);
void lmp_sbuf_puts(lmp_sbuf *b, const char *s);
void lmp_sbuf_putc(lmp_sbuf *b, char c);
void lmp_sbuf_printf(lmp_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lmp_sbuf_free(lmp_sbuf *b);

/* Whether [s, s+n) is valid UTF-8; if not, *bad is the offset of the first bad byte. */
int lmp_utf8_valid(const char *s, size_t n, size_t *bad);

/* mkdir -p; the final path must end up a directory (lmp_output_dir_check). */
int lmp_mkdirs(const char *path);

/* Memory-mapped files (model checkpoints, read in place).  A file truncated
 * or rewritten in place while mapped turns a read of a vanished page into
 * SIGBUS: the handler lmp_map_file installs names the file in one line
 * ("lmpipe: FILE changed on disk while mapped (SIGBUS); ...") with write(2)
 * and ends the process with _exit(1).  A SIGBUS elsewhere stays fatal as
 * usual.  Map read-only and private, like mmap(NULL, len, PROT_READ,
 * MAP_PRIVATE, fd, 0); MAP_FAILED with errno on failure. */
void *lmp_map_file(int fd, size_t len, const char *path);
void lmp_unmap_file(void *addr, size_t len);

/* Physical memory of this machine in bytes (0 if unknown). */
uint64_t lmp_physical_memory(void);
/* For a stage's check (lmp_stage_def.check): 0 when `bytes` fit in physical
 * memory, else -1 and "WHAT need about X GB, more than this machine's Y GB
 * of memory".  Only what is sure to be needed belongs in `bytes`: the check
 * refuses the obviously impossible, it does not predict the peak. */
int lmp_check_memory(double bytes, const char *what);

/* SHA-256 */
typedef struct {
    uint32_t h[8];
    uint64_t nbytes;
    uint8_t buf[64];
    size_t nbuf;
} lmp_sha256;
void lmp_sha256_init(lmp_sha256 *s);
void lmp_sha256_update(lmp_sha256 *s, const void *data, size_t len);
void lmp_sha256_final(lmp_sha256 *s, char hex[65]);
int lmp_sha256_file(const char *path, char hex[65], int64_t *bytes);
/* The same for an input file that several places hash (a stage key, then
 * the stage itself; a corpus read by two stages): remembered for the life
 * of the process under the file's (device, inode, size, mtime, ctime), so
 * a 12 MB corpus costs one read.  Not for files the process rewrites. */
int lmp_sha256_file_memo(const char *path, char hex[65]);
/* A file's SHA-256, or a folder's: over every regular file below it in
 * sorted order, each as its relative name, NUL, its SHA-256 (bytes: the sum). */
int lmp_sha256_path(const char *path, char hex[65], int64_t *bytes);

/* A fast non-cryptographic hash of bytes (hash tables). */
uint64_t lmp_hash_bytes(const void *data, size_t n);

/* Wall-clock seconds (monotonic). */
double lmp_now(void);

/* Edit distance, for "did you mean" suggestions. */
int lmp_edit_distance(const char *a, const char *b);
/* Whether `candidate` is close enough to `typed` to suggest it ("did you mean"):
 * edit distance within 1-3 depending on length, or one is a prefix of the other.
 * *distance is the distance used (for a candidate that is not close it may
 * only be a number above the limit). */
int lmp_is_close(const char *typed, const char *candidate, int *distance);

/* Parse all of s as a finite double (strtod's syntax, nothing before or
 * after it).  The message, without location, says which way it is wrong:
 * "'x' is not a number", "'nan' is not a finite number", "'1e400'
 * overflows (...)", "'1e-400' underflows (...)". */
int lmp_parse_double(const char *s, double *out);

/* A small, fast, seedable RNG (xoshiro256**) whose full state can be saved. */
typedef struct { uint64_t s[4]; } lmp_rng;
void lmp_rng_seed(lmp_rng *r, uint64_t seed);
uint64_t lmp_rng_u64(lmp_rng *r);
float lmp_rng_uniform(lmp_rng *r);       /* [0, 1) */
/* The same two, inlined for loops that draw one number per element
 * (dropout masks): the call through the PLT cost as much as the draw. */
static inline uint64_t lmp_rng_u64_inline(lmp_rng *r)
{
    uint64_t *s = r->s, x = s[1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}
static inline float lmp_rng_uniform_inline(lmp_rng *r)
{
    return (float)(lmp_rng_u64_inline(r) >> 40) * (1.0f / 16777216.0f);
}
float lmp_rng_normal(lmp_rng *r);        /* N(0, 1) */

#endif
