/*
 * util.c — checked allocation, error messages, file I/O with atomic writes,
 * SHA-256, timing, edit distance and the RNG.  See util.h.
 */
#include "config.h"

#include <dirent.h>
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "util.h"

/* ------------------------------------------------------------------ errors */

static __thread char err_buf[1024];

int lmp_error(const char *fmt, ...)
{
    char tmp[sizeof err_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap); /* fmt may reference err_buf itself */
    va_end(ap);
    /* one line: a message never carries a newline */
    for (char *p = tmp; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    memcpy(err_buf, tmp, sizeof err_buf);
    return -1;
}

const char *lmp_errmsg(void) { return err_buf; }

/* ------------------------------------------------------------ interruption */

/* The signal that asked the process to stop (0: none).  Written by a signal
 * handler, so a volatile sig_atomic_t and nothing else. */
static volatile sig_atomic_t interrupt_sig;

int lmp_interrupt_note(int sig)
{
    int before = interrupt_sig;
    interrupt_sig = sig;
    return before;
}
int lmp_interrupt_signal(void) { return interrupt_sig; }
void lmp_interrupt_clear(void) { interrupt_sig = 0; }
int lmp_interrupted(void) { return interrupt_sig != 0; }
void lmp_set_interrupted(void)
{
    if (!interrupt_sig) interrupt_sig = SIGINT;
}

/* -------------------------------------------------------------- allocation */

/* Set by the run executor while a stage runs (lmp_oom_set). */
static lmp_oom_hook oom_hook;
static void *oom_arg;
static const char *oom_where;

void lmp_oom_set(lmp_oom_hook hook, void *arg, const char *where, lmp_oom_hook *prev_hook, void **prev_arg,
                 const char **prev_where)
{
    if (prev_hook) *prev_hook = oom_hook;
    if (prev_arg) *prev_arg = oom_arg;
    if (prev_where) *prev_where = oom_where;
    oom_hook = hook, oom_arg = arg, oom_where = where;
}

static void oom(size_t size, const char *file, int line)
{
    /* One report: a second thread failing at the same time waits for the
     * first to exit; the same thread failing again inside the hook (it
     * should not allocate, but) ends at once. */
    static atomic_int reporting;
    static __thread int in_oom;
    if (in_oom) _exit(1);
    in_oom = 1;
    if (atomic_exchange(&reporting, 1))
        for (;;) pause();
    char msg[512]; /* no allocation from here on but the hook's */
    if (oom_where) snprintf(msg, sizeof msg, "out of memory allocating %zu bytes in %s", size, oom_where);
    else snprintf(msg, sizeof msg, "out of memory (%zu bytes) at %s:%d", size, file, line);
    if (!(oom_hook && oom_hook(msg, oom_arg))) fprintf(stderr, "lmpipe: %s\n", msg);
    exit(1);
}

void *lmp_malloc_check(size_t size, const char *file, int line)
{
    void *p = malloc(size ? size : 1);
    if (!p) oom(size, file, line);
    return p;
}

void *lmp_calloc_check(size_t n, size_t size, const char *file, int line)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    size_t bytes;
    if (!p) oom(__builtin_mul_overflow(n, size, &bytes) ? SIZE_MAX : bytes, file, line);
    return p;
}

void *lmp_realloc_check(void *p, size_t size, const char *file, int line)
{
    void *q = realloc(p, size ? size : 1);
    if (!q) oom(size, file, line);
    return q;
}

char *lmp_strdup_check(const char *s, const char *file, int line)
{
    size_t n = strlen(s) + 1;
    char *d = lmp_malloc_check(n, file, line);
    memcpy(d, s, n);
    return d;
}

char *lmp_strfmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = mallocCheck((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ------------------------------------------------------------------- files */

int lmp_read_file(const char *path, size_t max_bytes, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lmp_error("%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lmp_error("%s: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return lmp_error("%s: is a directory, expected a file", path);
    }
    if (max_bytes > 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > max_bytes) {
        close(fd);
        return lmp_error("%s: file too large (%lld bytes, limit %zu)", path,
                         (long long)st.st_size, max_bytes);
    }
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536, n = 0;
    char *buf = mallocCheck(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = reallocCheck(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            free(buf);
            close(fd);
            return lmp_error("%s: read failed: %s", path, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
        if (max_bytes > 0 && n > max_bytes) {
            free(buf);
            close(fd);
            return lmp_error("%s: file too large (over %zu bytes)", path, max_bytes);
        }
    }
    close(fd);
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int lmp_read_text_file(const char *path, size_t max_bytes, char **data, size_t *len)
{
    if (!has_suffix(path, ".gz")) return lmp_read_file(path, max_bytes, data, len);
    *data = NULL;
    *len = 0;
    struct stat st;
    if (stat(path, &st) != 0) return lmp_error("%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return lmp_error("%s: is a directory, expected a file", path);
    gzFile gz = gzopen(path, "rb");
    if (!gz) return lmp_error("%s: %s", path, errno ? strerror(errno) : "cannot open");
    size_t cap = 1 << 20, n = 0;
    char *buf = mallocCheck(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = reallocCheck(buf, cap);
        }
        size_t want = cap - n - 1 > (1u << 30) ? 1u << 30 : cap - n - 1;
        int r = gzread(gz, buf + n, (unsigned)want);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(gz, &zerr);
            lmp_error("%s: not a valid gzip file (%s)", path, zerr == Z_ERRNO ? strerror(errno) : msg);
            free(buf);
            gzclose(gz);
            return -1;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (max_bytes > 0 && n > max_bytes) {
            free(buf);
            gzclose(gz);
            return lmp_error("%s: decompressed text too large (over %zu bytes)", path, max_bytes);
        }
    }
    /* gzread stops quietly at a truncated stream; gzclose_r reports it */
    int zrc = gzclose(gz);
    if (zrc != Z_OK) {
        free(buf);
        return lmp_error("%s: truncated or damaged gzip file", path);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char *copy = strdupCheck(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0) return 0; /* best effort */
    fsync(fd);
    close(fd);
    return 0;
}

int lmp_atomic_open(lmp_atomic_file *af, const char *path)
{
    memset(af, 0, sizeof *af);
    if (lmp_output_file_check(path) != 0) return -1;
    char *tmp;
    int fd = lmp_temp_file(path, &tmp);
    if (fd < 0) return -1;
    af->fp = fdopen(fd, "wb");
    if (!af->fp) {
        int e = errno;
        close(fd);
        unlink(tmp);
        free(tmp);
        return lmp_error("%s: cannot write: %s", path, strerror(e));
    }
    af->path = strdupCheck(path);
    af->tmp_path = tmp;
    return 0;
}

int lmp_atomic_write(lmp_atomic_file *af, const void *data, size_t len)
{
    if (af->failed) return -1;
    if (len && fwrite(data, 1, len, af->fp) != len) {
        af->failed = 1;
        return lmp_error("%s: write failed: %s", af->path, strerror(errno));
    }
    return 0;
}

void lmp_atomic_abort(lmp_atomic_file *af)
{
    if (af->fp) fclose(af->fp);
    if (af->tmp_path) unlink(af->tmp_path);
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

int lmp_atomic_commit(lmp_atomic_file *af)
{
    if (af->failed) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", lmp_errmsg());
        lmp_atomic_abort(af);
        return lmp_error("%s", msg);
    }
    int bad = fflush(af->fp) != 0 || fsync(fileno(af->fp)) != 0;
    int e = errno;
    bad |= fclose(af->fp) != 0;
    af->fp = NULL;
    if (bad) {
        if (!e) e = errno;
        lmp_error("%s: write failed: %s", af->path, strerror(e));
        lmp_atomic_abort(af);
        return -1;
    }
    /* again: what is at the path now gets replaced (a long write may have
     * taken a while) */
    if (lmp_output_file_check(af->path) != 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", lmp_errmsg());
        lmp_atomic_abort(af);
        return lmp_error("%s", msg);
    }
    if (rename(af->tmp_path, af->path) != 0) {
        lmp_error("%s: cannot replace: %s", af->path, strerror(errno));
        lmp_atomic_abort(af);
        return -1;
    }
    fsync_dir_of(af->path);
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
    return 0;
}

int lmp_write_file_atomic(const char *path, const void *data, size_t len)
{
    lmp_atomic_file af;
    if (lmp_atomic_open(&af, path) != 0) return -1;
    lmp_atomic_write(&af, data, len);
    return lmp_atomic_commit(&af);
}

int lmp_mkdirs(const char *path)
{
    char *p = strdupCheck(path);
    for (char *s = p + 1; ; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                int e = errno;
                lmp_error("%s: cannot create directory: %s", p, strerror(e));
                free(p);
                return -1;
            }
            *s = c;
            if (!c) break;
        }
    }
    free(p);
    return lmp_output_dir_check(path);
}

/* ----------------------------------------------------------- output safety */

/* Protected files by canonical path: the store and its companions.  Few
 * (one store per process, a handful in the unit tests) and kept for the
 * life of the process: a store closed a moment ago is still no output. */
static char **protected;
static int n_protected;
static pthread_mutex_t protected_lock = PTHREAD_MUTEX_INITIALIZER;

/* realpath of the folder + "/" + the last name: the file itself need not
 * exist, and a symbolic link at the last name is not followed.  NULL when
 * the folder does not resolve (then nothing can be written there either). */
static char *canonical(const char *path)
{
    char *a = strdupCheck(path), *b = strdupCheck(path);
    const char *name = basename(b);
    char *dir = realpath(dirname(a), NULL), *out = NULL;
    if (dir && (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strcmp(name, "/") == 0))
        out = realpath(path, NULL);
    else if (dir)
        out = lmp_strfmt("%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", name);
    free(dir), free(a), free(b);
    return out;
}

void lmp_protect_file(const char *path)
{
    char *c = realpath(path, NULL);
    if (!c) c = canonical(path);
    if (!c) return;
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    pthread_mutex_lock(&protected_lock);
    int have = 0;
    for (int i = 0; i < n_protected && !have; i++) have = strcmp(protected[i], c) == 0;
    for (int k = 0; k < 4 && !have; k++) {
        protected = reallocCheck(protected, (size_t)(n_protected + 1) * sizeof *protected);
        protected[n_protected++] = lmp_strfmt("%s%s", c, suffix[k]);
    }
    pthread_mutex_unlock(&protected_lock);
    free(c);
}

/* The protected file that `path` (whose lstat is *st, when it exists) is,
 * by canonical name or by device and inode; NULL if none.  Caller frees. */
static char *protected_match(const char *path, const struct stat *st)
{
    char *c = canonical(path), *hit = NULL;
    pthread_mutex_lock(&protected_lock);
    for (int i = 0; i < n_protected && !hit; i++) {
        struct stat ps;
        if ((c && strcmp(c, protected[i]) == 0) ||
            (st && stat(protected[i], &ps) == 0 && ps.st_dev == st->st_dev && ps.st_ino == st->st_ino))
            hit = strdupCheck(protected[i]);
    }
    pthread_mutex_unlock(&protected_lock);
    free(c);
    return hit;
}

static const char *file_kind(mode_t m)
{
    return S_ISLNK(m) ? "a symbolic link" : S_ISDIR(m) ? "a directory" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket"
         : S_ISREG(m) ? "a regular file" : "not a regular file";
}

static int refuse_protected(const char *path, char *hit)
{
    lmp_error("%s: is the experiment store%s%s%s; refusing to write over it", path, strcmp(path, hit) ? " (" : "",
              strcmp(path, hit) ? hit : "", strcmp(path, hit) ? ")" : "");
    free(hit);
    return -1;
}

int lmp_output_file_check(const char *path)
{
    struct stat st;
    int exists = lstat(path, &st) == 0;
    if (exists && !S_ISREG(st.st_mode))
        return lmp_error("%s: is %s, not a regular file; refusing to replace it", path, file_kind(st.st_mode));
    char *hit = protected_match(path, exists ? &st : NULL);
    return hit ? refuse_protected(path, hit) : 0;
}

int lmp_output_dir_check(const char *path)
{
    struct stat st;
    int exists = stat(path, &st) == 0 || lstat(path, &st) == 0; /* lstat: a dangling link */
    if (exists && S_ISDIR(st.st_mode)) return 0;                /* (the store is no directory) */
    char *hit = protected_match(path, exists ? &st : NULL);
    if (hit) return refuse_protected(path, hit);
    if (!exists) return 0; /* to be created */
    return lmp_error("%s: is %s, not a directory", path, file_kind(st.st_mode));
}

/* Six random characters for a temporary name. */
static void temp_suffix(char out[7])
{
    static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static atomic_ulong counter;
    uint64_t r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        uint64_t x[3] = {(uint64_t)getpid(), (uint64_t)(lmp_now() * 1e9), atomic_fetch_add(&counter, 1)};
        r = lmp_hash_bytes(x, sizeof x);
    }
    for (int i = 0; i < 6; i++, r /= 62) out[i] = abc[r % 62];
    out[6] = 0;
}

int lmp_temp_file(const char *path, char **tmp_path)
{
    *tmp_path = NULL;
    for (int tries = 0; tries < 100; tries++) {
        char sfx[7];
        temp_suffix(sfx);
        char *tmp = lmp_strfmt("%s.tmp.%ld.%s", path, (long)getpid(), sfx);
        /* O_EXCL: never an existing name, nor a symbolic link planted there */
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd >= 0) {
            *tmp_path = tmp;
            return fd;
        }
        int e = errno;
        free(tmp);
        if (e != EEXIST) {
            lmp_error("%s: cannot write: %s", path, strerror(e));
            errno = e; /* for a caller that words its own message */
            return -1;
        }
    }
    lmp_error("%s: cannot write: no free temporary name beside it", path);
    errno = EEXIST;
    return -1;
}

char *lmp_temp_dir(const char *path)
{
    for (int tries = 0; tries < 100; tries++) {
        char sfx[7];
        temp_suffix(sfx);
        char *tmp = lmp_strfmt("%s.tmp.%ld.%s", path, (long)getpid(), sfx);
        if (mkdir(tmp, 0777) == 0) return tmp; /* mkdir never follows a link */
        int e = errno;
        free(tmp);
        if (e != EEXIST) {
            lmp_error("%s: cannot create a temporary folder beside it: %s", path, strerror(e));
            return NULL;
        }
    }
    lmp_error("%s: cannot create a temporary folder: no free name beside it", path);
    return NULL;
}

/* ------------------------------------------------------------ mapped files */

/* The registry the SIGBUS handler reads: fixed slots, so the handler needs
 * no lock and no allocation; a slot is free while its address is 0. */
#define MAX_MAPPED 64
static struct {
    _Atomic(uintptr_t) addr;
    size_t len;
    char path[1024];
} mapped[MAX_MAPPED];
static pthread_mutex_t mapped_lock = PTHREAD_MUTEX_INITIALIZER;

static void put_str(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0 && errno != EINTR) return;
        if (w > 0) s += w, n -= (size_t)w;
    }
}

/* Async-signal-safe: no stdio, no allocation, no lock. */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    uintptr_t a = (uintptr_t)si->si_addr;
    for (int i = 0; i < MAX_MAPPED; i++) {
        uintptr_t b = atomic_load(&mapped[i].addr);
        if (b && a >= b && a - b < mapped[i].len) {
            put_str("lmpipe: ");
            put_str(mapped[i].path);
            put_str(" changed on disk while mapped (SIGBUS); checkpoints are read in place and must not be "
                    "rewritten while in use\n");
            _exit(1);
        }
    }
    /* not a mapped file: the usual crash */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_sigbus(void)
{
    struct sigaction sa = {0};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

void *lmp_map_file(int fd, size_t len, const char *path)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) return m;
    pthread_once(&once, install_sigbus);
    pthread_mutex_lock(&mapped_lock);
    for (int i = 0; i < MAX_MAPPED; i++) {
        if (atomic_load(&mapped[i].addr)) continue;
        snprintf(mapped[i].path, sizeof mapped[i].path, "%s", path);
        mapped[i].len = len;
        atomic_store(&mapped[i].addr, (uintptr_t)m); /* last: the slot is complete */
        break;
    }
    pthread_mutex_unlock(&mapped_lock);
    return m;
}

void lmp_unmap_file(void *addr, size_t len)
{
    if (!addr) return;
    pthread_mutex_lock(&mapped_lock);
    for (int i = 0; i < MAX_MAPPED; i++)
        if (atomic_load(&mapped[i].addr) == (uintptr_t)addr) atomic_store(&mapped[i].addr, 0);
    pthread_mutex_unlock(&mapped_lock);
    munmap(addr, len);
}

/* ------------------------------------------------------------------ memory */

uint64_t lmp_physical_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

int lmp_check_memory(double bytes, const char *what)
{
    uint64_t have = lmp_physical_memory();
    if (have == 0 || bytes <= (double)have) return 0;
    return lmp_error("%s need about %.1f GB, more than this machine's %.1f GB of memory", what, bytes / 1e9,
                     (double)have / 1e9);
}

/* ----------------------------------------------------------------- SHA-256 */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(lmp_sha256 *s, const uint8_t *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, h;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
    e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
    s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

void lmp_sha256_init(lmp_sha256 *s)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->nbytes = 0;
    s->nbuf = 0;
}

void lmp_sha256_update(lmp_sha256 *s, const void *data, size_t len)
{
    const uint8_t *p = data;
    s->nbytes += len;
    while (len > 0) {
        if (s->nbuf == 0 && len >= 64) {
            sha256_block(s, p);
            p += 64, len -= 64;
            continue;
        }
        size_t take = 64 - s->nbuf < len ? 64 - s->nbuf : len;
        memcpy(s->buf + s->nbuf, p, take);
        s->nbuf += take, p += take, len -= take;
        if (s->nbuf == 64) {
            sha256_block(s, s->buf);
            s->nbuf = 0;
        }
    }
}

void lmp_sha256_final(lmp_sha256 *s, char hex[65])
{
    uint64_t bits = s->nbytes * 8;
    uint8_t pad = 0x80, zero = 0, len8[8];
    lmp_sha256_update(s, &pad, 1);
    while (s->nbuf != 56) lmp_sha256_update(s, &zero, 1);
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(bits >> (56 - 8 * i));
    lmp_sha256_update(s, len8, 8);
    for (int i = 0; i < 8; i++) sprintf(hex + 8 * i, "%08x", s->h[i]);
    hex[64] = 0;
}

int lmp_sha256_file(const char *path, char hex[65], int64_t *bytes)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return lmp_error("%s: %s", path, strerror(errno));
    lmp_sha256 s;
    lmp_sha256_init(&s);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0) lmp_sha256_update(&s, buf, n);
    int bad = ferror(fp);
    fclose(fp);
    if (bad) return lmp_error("%s: read failed", path);
    if (bytes) *bytes = (int64_t)s.nbytes;
    lmp_sha256_final(&s, hex);
    return 0;
}

#define MEMO_SLOTS 64
static struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    char hex[65];
} memo[MEMO_SLOTS];
static int memo_used, memo_next;
static pthread_mutex_t memo_lock = PTHREAD_MUTEX_INITIALIZER;

static int same_file(int i, const struct stat *st)
{
    return memo[i].dev == st->st_dev && memo[i].ino == st->st_ino && memo[i].size == st->st_size &&
           memo[i].mtime.tv_sec == st->st_mtim.tv_sec && memo[i].mtime.tv_nsec == st->st_mtim.tv_nsec &&
           memo[i].ctime.tv_sec == st->st_ctim.tv_sec && memo[i].ctime.tv_nsec == st->st_ctim.tv_nsec;
}

int lmp_sha256_file_memo(const char *path, char hex[65])
{
    struct stat st;
    if (stat(path, &st) != 0) return lmp_error("%s: %s", path, strerror(errno));
    pthread_mutex_lock(&memo_lock);
    for (int i = 0; i < memo_used; i++)
        if (same_file(i, &st)) {
            memcpy(hex, memo[i].hex, 65);
            pthread_mutex_unlock(&memo_lock);
            return 0;
        }
    pthread_mutex_unlock(&memo_lock);
    /* stat before reading: a file changed while it is read gets a new
     * stat, so the entry below is never found again */
    if (lmp_sha256_file(path, hex, NULL) != 0) return -1;
    pthread_mutex_lock(&memo_lock);
    int i = memo_next;
    memo_next = (memo_next + 1) % MEMO_SLOTS;
    if (memo_used < MEMO_SLOTS) memo_used++;
    memo[i].dev = st.st_dev, memo[i].ino = st.st_ino, memo[i].size = st.st_size;
    memo[i].mtime = st.st_mtim, memo[i].ctime = st.st_ctim;
    memcpy(memo[i].hex, hex, 65);
    pthread_mutex_unlock(&memo_lock);
    return 0;
}

/* ------------------------------------------------------------------ strings */

void lmp_sbuf_putn(lmp_sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2 + 64;
        b->s = reallocCheck(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void lmp_sbuf_puts(lmp_sbuf *b, const char *s) { lmp_sbuf_putn(b, s, strlen(s)); }
void lmp_sbuf_putc(lmp_sbuf *b, char c) { lmp_sbuf_putn(b, &c, 1); }

void lmp_sbuf_printf(lmp_sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = (b->len + (size_t)n + 1) * 2 + 64;
        b->s = reallocCheck(b->s, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void lmp_sbuf_free(lmp_sbuf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

int lmp_utf8_valid(const char *str, size_t n, size_t *bad)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned cp;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
        else goto invalid;
        if (i + len > n) goto invalid;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) goto invalid;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        /* overlong forms, surrogates, beyond U+10FFFF */
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            goto invalid;
        i += len;
    }
    return 1;
invalid:
    if (bad) *bad = i;
    return 0;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Feed `rel` (relative name) of every regular file under dir/rel into h. */
static int sha256_tree(lmp_sha256 *h, const char *root, const char *rel, int64_t *bytes, int depth)
{
    if (depth > 32) return lmp_error("%s: folders nested too deep", root);
    char *dir = *rel ? lmp_strfmt("%s/%s", root, rel) : strdupCheck(root);
    DIR *d = opendir(dir);
    if (!d) {
        lmp_error("%s: %s", dir, strerror(errno));
        free(dir);
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        names = reallocCheck(names, (n + 1) * sizeof *names);
        names[n++] = strdupCheck(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char *r = *rel ? lmp_strfmt("%s/%s", rel, names[i]) : strdupCheck(names[i]);
        char *full = lmp_strfmt("%s/%s", root, r);
        struct stat st;
        if (rc == 0 && lstat(full, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                rc = sha256_tree(h, root, r, bytes, depth + 1);
            } else if (S_ISREG(st.st_mode)) {
                char hex[65];
                int64_t b = 0;
                rc = lmp_sha256_file(full, hex, &b);
                lmp_sha256_update(h, r, strlen(r) + 1);
                lmp_sha256_update(h, hex, 64);
                *bytes += b;
            }
        }
        free(full), free(r), free(names[i]);
    }
    free(names);
    free(dir);
    return rc;
}

int lmp_sha256_path(const char *path, char hex[65], int64_t *bytes)
{
    struct stat st;
    if (stat(path, &st) != 0) return lmp_error("%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return lmp_sha256_file(path, hex, bytes);
    lmp_sha256 h;
    lmp_sha256_init(&h);
    int64_t total = 0;
    if (sha256_tree(&h, path, "", &total, 0) != 0) return -1;
    lmp_sha256_final(&h, hex);
    if (bytes) *bytes = total;
    return 0;
}

/* ------------------------------------------------------------------- misc */

uint64_t lmp_hash_bytes(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, p, n);
    h = (h ^ v) * 0x94D049BB133111EBull;
    return h ^ (h >> 29);
}

double lmp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Optimal string alignment distance: insertions, deletions, substitutions and
 * transpositions of neighbours ("rnu" -> "run" is one edit). */
int lmp_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int *prev2 = mallocCheck((lb + 1) * sizeof(int)), *prev = mallocCheck((lb + 1) * sizeof(int));
    int *row = mallocCheck((lb + 1) * sizeof(int));
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int best = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < best) best = prev[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            row[j] = best;
        }
        int *t = prev2;
        prev2 = prev, prev = row, row = t;
    }
    int d = prev[lb];
    free(prev2), free(prev), free(row);
    return d;
}

int lmp_is_close(const char *typed, const char *candidate, int *distance)
{
    size_t lt = strlen(typed), lc = strlen(candidate);
    int limit = lt <= 3 ? 1 : lt <= 6 ? 2 : 3, d;
    if (lt > 2 && lc > 2 && (strncmp(typed, candidate, lt) == 0 || strncmp(typed, candidate, lc) == 0))
        d = lt != lc; /* one is a prefix of the other */
    else if (lt > lc + (size_t)limit || lc > lt + (size_t)limit)
        /* the distance is at least the difference in length: no need to
         * compute it (for a name a megabyte long that takes seconds) */
        d = limit + 1;
    else
        d = lmp_edit_distance(typed, candidate);
    if (distance) *distance = d;
    return d <= limit;
}

/* ----------------------------------------------------------------- numbers */

int lmp_parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    /* strtod skips leading blanks and stops at the first character it cannot
     * use: the whole string must be the number */
    if (!*s || isspace((unsigned char)*s) || end == s || *end) return lmp_error("'%s' is not a number", s);
    if (isnan(v) || (isinf(v) && errno != ERANGE)) return lmp_error("'%s' is not a finite number", s);
    if (errno == ERANGE && isinf(v))
        return lmp_error("'%s' overflows (beyond %g, the largest double)", s, DBL_MAX);
    /* ERANGE with a result at or below DBL_MIN: 0 or a subnormal, an
     * approximation that has lost digits (glibc sets it for both) */
    if (errno == ERANGE)
        return lmp_error("'%s' underflows (nonzero, but below %g, the smallest normal double)", s, DBL_MIN);
    *out = v;
    return 0;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void lmp_rng_seed(lmp_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

uint64_t lmp_rng_u64(lmp_rng *r) { return lmp_rng_u64_inline(r); }

float lmp_rng_uniform(lmp_rng *r) { return lmp_rng_uniform_inline(r); }

float lmp_rng_normal(lmp_rng *r)
{
    /* Box-Muller; u1 in (0, 1] so the log is finite */
    double u1 = ((lmp_rng_u64(r) >> 11) + 1) * (1.0 / 9007199254740992.0);
    double u2 = (lmp_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
