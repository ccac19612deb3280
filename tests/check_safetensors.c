/* check_safetensors.c — the safetensors reader against a file in the Python
 * library's layout (tests/fixtures/gpt2/st_ref.safetensors), the writer
 * byte-for-byte against it, and every kind of corrupt header, asserting the
 * exact error messages. */
#include "config.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "safetensors.h"
#include "util.h"
#include "testutil.h"

static char tmpdir[] = "/tmp/lmp_stXXXXXX";
static int file_no;

static char *fixture(const char *name) { return test_fixture("gpt2", name); }

/* A file made of the 8-byte length of `hdr` (or `hlen_override` when not 0),
 * the header text and `dlen` data bytes. */
static char *make_file(const char *hdr, const void *data, size_t dlen, uint64_t hlen_override)
{
    char *path = lmp_strfmt("%s/f%d.safetensors", tmpdir, file_no++);
    size_t hl = strlen(hdr);
    uint64_t n = hlen_override ? hlen_override : hl;
    unsigned char *buf = mallocCheck(8 + hl + dlen);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(n >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    if (dlen) memcpy(buf + 8 + hl, data, dlen);
    ck_assert_int_eq(lmp_write_file_atomic(path, buf, 8 + hl + dlen), 0);
    free(buf);
    return path;
}

/* open must fail with exactly "<path>: <msg>" */
static void expect_open_error(const char *path, const char *msg)
{
    lmp_st *st = (lmp_st *)1;
    ck_assert_int_eq(lmp_st_open(path, &st), -1);
    ck_assert_ptr_null(st);
    char *want = lmp_strfmt("%s: %s", path, msg);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);
}

static void bad_header(const char *hdr, size_t dlen, const char *msg)
{
    static const unsigned char zeros[256];
    char *p = make_file(hdr, zeros, dlen, 0);
    expect_open_error(p, msg);
    free(p);
}

START_TEST(read_reference_file)
{
    char *path = fixture("st_ref.safetensors");
    lmp_st *st;
    ck_assert_msg(lmp_st_open(path, &st) == 0, "%s", lmp_errmsg());
    ck_assert_int_eq(lmp_st_count(st), 6);
    ck_assert_str_eq(lmp_st_metadata(st, "format"), "pt");
    ck_assert_str_eq(lmp_st_metadata(st, "note"), "made by make_fixtures.py");
    ck_assert_ptr_null(lmp_st_metadata(st, "nope"));
    ck_assert_int_eq(lmp_st_metadata_count(st), 2);
    ck_assert_str_eq(lmp_st_metadata_key(st, 0), "format");

    const void *d;
    int64_t shape[LMP_ST_MAX_DIMS];
    int ndim;
    ck_assert_int_eq(lmp_st_get(st, "b.weight", "F32", &d, shape, &ndim), 0);
    ck_assert_int_eq(ndim, 2);
    ck_assert_int_eq(shape[0], 2);
    ck_assert_int_eq(shape[1], 3);
    for (int i = 0; i < 6; i++) ck_assert_float_eq(((const float *)d)[i], i / 4.0f);
    ck_assert_int_eq(lmp_st_get(st, "a.ids", "I64", &d, shape, &ndim), 0);
    ck_assert_int_eq(((const int64_t *)d)[0], -3);
    ck_assert_int_eq(((const int64_t *)d)[2], 1LL << 40);
    ck_assert_int_eq(lmp_st_get(st, "c.half", "F16", &d, NULL, NULL), 0);
    ck_assert_uint_eq(((const uint16_t *)d)[0], 0x3E00); /* 1.5 */
    ck_assert_uint_eq(((const uint16_t *)d)[1], 0xC000); /* -2.0 */
    ck_assert_int_eq(lmp_st_get(st, "d.bytes", "U8", &d, NULL, NULL), 0);
    ck_assert_uint_eq(((const uint8_t *)d)[2], 3);
    ck_assert_int_eq(lmp_st_get(st, "e.empty", "F32", &d, shape, &ndim), 0);
    ck_assert_int_eq(ndim, 2);
    ck_assert_int_eq(shape[0], 0);
    ck_assert_int_eq(lmp_st_get(st, "z.scalar", NULL, &d, shape, &ndim), 0);
    ck_assert_int_eq(ndim, 0);
    ck_assert_float_eq(*(const float *)d, 7.25f);
    ck_assert_uint_eq(lmp_st_find(st, "z.scalar")->nbytes, 4);

    ck_assert_int_eq(lmp_st_get(st, "missing", "F32", &d, NULL, NULL), -1);
    char *want = lmp_strfmt("%s: no tensor \"missing\"", path);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);
    ck_assert_int_eq(lmp_st_get(st, "b.weight", "F16", &d, NULL, NULL), -1);
    want = lmp_strfmt("%s: tensor \"b.weight\" has dtype F32, expected F16", path);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);
    /* iteration in header order */
    ck_assert_str_eq(lmp_st_info_at(st, 0)->name, "a.ids");
    ck_assert_str_eq(lmp_st_info_at(st, 5)->name, "d.bytes");
    ck_assert_ptr_null(lmp_st_info_at(st, 6));
    lmp_st_close(st);
    free(path);
}
END_TEST

START_TEST(writer_matches_python_layout)
{
    float b[6];
    for (int i = 0; i < 6; i++) b[i] = i / 4.0f;
    int64_t ids[3] = { -3, 5, 1LL << 40 };
    uint16_t half[2] = { 0x3E00, 0xC000 };
    uint8_t bytes[3] = { 1, 2, 3 };
    float scalar = 7.25f;
    int64_t sb[2] = { 2, 3 }, sa[1] = { 3 }, sc[1] = { 2 }, sd[1] = { 3 }, se[2] = { 0, 4 };
    lmp_st_tensor t[] = {
        { "z.scalar", "F32", 0, NULL, &scalar }, { "d.bytes", "U8", 1, sd, bytes },
        { "b.weight", "F32", 2, sb, b },         { "c.half", "F16", 1, sc, half },
        { "e.empty", "F32", 2, se, NULL },       { "a.ids", "I64", 1, sa, ids },
    };
    lmp_st_kv meta[] = { { "format", "pt" }, { "note", "made by make_fixtures.py" } };
    char *out = lmp_strfmt("%s/written.safetensors", tmpdir);
    ck_assert_int_eq(lmp_st_write(out, t, 6, meta, 2), 0);
    char *ref = fixture("st_ref.safetensors"), *a, *bb;
    size_t na, nb;
    ck_assert_int_eq(lmp_read_file(ref, 0, &a, &na), 0);
    ck_assert_int_eq(lmp_read_file(out, 0, &bb, &nb), 0);
    ck_assert_uint_eq(na, nb);
    ck_assert_int_eq(memcmp(a, bb, na), 0);
    free(a);
    free(bb);

    /* writer refuses duplicates and the reserved name */
    lmp_st_tensor dup[] = { { "x", "F32", 0, NULL, &scalar }, { "x", "F32", 0, NULL, &scalar } };
    ck_assert_int_eq(lmp_st_write(out, dup, 2, NULL, 0), -1);
    char *want = lmp_strfmt("%s: cannot write tensor \"x\" twice", out);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);
    lmp_st_tensor res[] = { { "__metadata__", "F32", 0, NULL, &scalar } };
    ck_assert_int_eq(lmp_st_write(out, res, 1, NULL, 0), -1);
    want = lmp_strfmt("%s: cannot write tensor \"__metadata__\": bad name, dtype or rank", out);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);
    /* an empty file (no tensors, no metadata) round-trips */
    ck_assert_int_eq(lmp_st_write(out, NULL, 0, NULL, 0), 0);
    lmp_st *st;
    ck_assert_int_eq(lmp_st_open(out, &st), 0);
    ck_assert_int_eq(lmp_st_count(st), 0);
    lmp_st_close(st);
    free(out);
    free(ref);
}
END_TEST

START_TEST(corrupt_files)
{
    char *p = lmp_strfmt("%s/short.safetensors", tmpdir);
    ck_assert_int_eq(lmp_write_file_atomic(p, "abc", 3), 0);
    expect_open_error(p, "file too small for a safetensors header (3 bytes)");
    free(p);
    p = make_file("{}", NULL, 0, 0xFFFFFFFFFFFFFFFFull);
    expect_open_error(p, "header length 18446744073709551615 is absurd (limit 100000000)");
    free(p);
    p = make_file("{}", NULL, 0, 1000);
    expect_open_error(p, "header length 1000 runs past the end of the file (10 bytes)");
    free(p);
    p = lmp_strfmt("%s/nope.safetensors", tmpdir);
    expect_open_error(p, "No such file or directory");
    free(p);
    expect_open_error(tmpdir, "not a regular file");

    /* JSON errors carry Jansson's text; check the fixed parts */
    p = make_file("{\"a\": ", NULL, 0, 0);
    lmp_st *st;
    ck_assert_int_eq(lmp_st_open(p, &st), -1);
    char *want = lmp_strfmt("%s: header is not valid JSON: ", p);
    ck_assert_msg(strncmp(lmp_errmsg(), want, strlen(want)) == 0, "%s", lmp_errmsg());
    ck_assert_ptr_nonnull(strstr(lmp_errmsg(), "(line 1, column "));
    free(want);
    free(p);
    p = make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "abcd", 4, 0);
    ck_assert_int_eq(lmp_st_open(p, &st), -1);
    ck_assert_ptr_nonnull(strstr(lmp_errmsg(), "duplicate object key"));
    free(p);

    bad_header("[1, 2]", 0, "header is not a JSON object");
    bad_header("{\"t\": 3}", 0, "tensor \"t\": entry is not an object");
    bad_header("{\"t\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "tensor \"t\": missing dtype");
    bad_header("{\"t\": {\"dtype\": \"F33\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
               "tensor \"t\": unknown dtype \"F33\"");
    bad_header("{\"t\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4, "tensor \"t\": missing shape");
    bad_header("{\"t\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4,
               "tensor \"t\": shape entries must be non-negative integers");
    bad_header("{\"t\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4,
               "tensor \"t\": 9 dimensions (limit 8)");
    bad_header("{\"t\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4294967296]"
               ", \"data_offsets\": [0, 4]}}", 4, "tensor \"t\": shape too large");
    bad_header("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4,
               "tensor \"t\": data_offsets must be two non-negative integers");
    bad_header("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 8,
               "tensor \"t\": data_offsets [8, 4] end before they begin");
    bad_header("{\"t\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 20]}}", 20,
               "tensor \"t\": data_offsets [0, 20] hold 20 bytes but F32 x [2, 3] needs 24");
    bad_header("{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4,
               "tensor \"t\": data_offsets [0, 8] run past the end of the data (4 bytes)");
    bad_header("{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
               " \"u\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 12,
               "tensors \"t\" and \"u\" overlap");
    bad_header("{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
               " \"u\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [12, 16]}}", 16,
               "data bytes [8, 12) belong to no tensor");
    bad_header("{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 12,
               "data bytes [8, 12) belong to no tensor");
    bad_header("{\"__metadata__\": [1]}", 0, "__metadata__ is not an object");
    bad_header("{\"__metadata__\": {\"format\": 1}}", 0, "__metadata__ value for \"format\" is not a string");
}
END_TEST

START_TEST(misaligned_tensor_is_copied)
{
    /* a header of odd length puts the F32 data off 4-byte alignment */
    float v[2] = { 1.25f, -8.5f };
    const char *hdr = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} ";
    ck_assert_uint_ne((8 + strlen(hdr)) % 4, 0);
    char *p = make_file(hdr, v, 8, 0);
    lmp_st *st;
    ck_assert_msg(lmp_st_open(p, &st) == 0, "%s", lmp_errmsg());
    const void *d;
    ck_assert_int_eq(lmp_st_get(st, "t", "F32", &d, NULL, NULL), 0);
    ck_assert_uint_eq((uintptr_t)d % 4, 0);
    ck_assert_float_eq(((const float *)d)[0], 1.25f);
    ck_assert_float_eq(((const float *)d)[1], -8.5f);
    lmp_st_close(st);
    free(p);
}
END_TEST

int main(void)
{
    if (!mkdtemp(tmpdir)) return 1;
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, read_reference_file);
    tcase_add_test(tc, writer_matches_python_layout);
    tcase_add_test(tc, corrupt_files);
    tcase_add_test(tc, misaligned_tensor_is_copied);
    suite_add_tcase(s, tc);
    int failed = test_run_suite(s, 1);
    char *cmd = lmp_strfmt("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) failed++;
    free(cmd);
    return failed ? 1 : 0;
}
