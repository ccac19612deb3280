/*
 * fuzz.h — what the fuzz targets in tests/fuzz share.
 *
 * Each target is a function fuzz_NAME(data, size) in its own file.  Built
 * with --enable-fuzzing, each file becomes a libFuzzer program (compiled with
 * -DLMP_FUZZ_MAIN, which defines LLVMFuzzerTestOneInput); in every build the
 * same functions are linked into tests/fuzz_replay, which `make check` runs
 * over the committed seed corpora and regression inputs (tests/fuzz.test),
 * so a crash found once stays fixed.
 *
 * A target returns 0; a violated property (a decoded text that differs from
 * the input, an error without a message) calls fuzz_fail, which aborts: for
 * libFuzzer that is a finding like a crash.
 */
#ifndef LMP_FUZZ_H
#define LMP_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int fuzz_pipeline(const uint8_t *data, size_t size);
int fuzz_param(const uint8_t *data, size_t size);
int fuzz_safetensors(const uint8_t *data, size_t size);
int fuzz_gpt2(const uint8_t *data, size_t size);
int fuzz_bpe_load(const uint8_t *data, size_t size);
int fuzz_tokenizer(const uint8_t *data, size_t size);
int fuzz_cola(const uint8_t *data, size_t size);
int fuzz_lora(const uint8_t *data, size_t size);

/* Write data to `name` in this process's scratch directory (made on first
 * use, removed at exit) and return the file's path (static storage, valid
 * until the next call with the same name). */
const char *fuzz_file(const char *name, const void *data, size_t size);
/* The scratch directory itself. */
const char *fuzz_dir(void);
/* A file of the source tree (fixtures, the shipped vocabulary). */
const char *fuzz_srcfile(const char *rel);

/* Report a violated property and abort. */
void fuzz_fail(const char *target, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* Empty the error message before a call (so a failure must set one). */
void fuzz_clear_error(void);
/* After a call that failed: the error message must be one non-empty line. */
void fuzz_check_errmsg(const char *target);

#ifdef LMP_FUZZ_MAIN
#define LMP_FUZZ_ENTRY(fn)                                                  \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);           \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fn(data, size); }
#else
#define LMP_FUZZ_ENTRY(fn)
#endif

#endif
