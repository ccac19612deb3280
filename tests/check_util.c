/* check_util.c — SHA-256 vectors, atomic writes, file reading errors, edit distance, RNG. */
#include "config.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <math.h>
#include <sys/stat.h>
#include "util.h"
#include "testutil.h"

START_TEST(sha256_vectors)
{
    char hex[65];
    lmp_sha256 s;
    lmp_sha256_init(&s);
    lmp_sha256_final(&s, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    lmp_sha256_init(&s);
    lmp_sha256_update(&s, "abc", 3);
    lmp_sha256_final(&s, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    lmp_sha256_init(&s);
    for (size_t i = 0; i < strlen(m); i++) lmp_sha256_update(&s, m + i, 1); /* byte at a time */
    lmp_sha256_final(&s, hex);
    ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}
END_TEST

START_TEST(atomic_write_and_read)
{
    char dir[] = "/tmp/lmp_utilXXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char *path = lmp_strfmt("%s/a/b/file.bin", dir);
    char *sub = lmp_strfmt("%s/a/b", dir);
    ck_assert_int_eq(lmp_mkdirs(sub), 0);
    ck_assert_int_eq(lmp_write_file_atomic(path, "hello", 5), 0);
    char *data; size_t len;
    ck_assert_int_eq(lmp_read_file(path, 0, &data, &len), 0);
    ck_assert_uint_eq(len, 5);
    ck_assert_str_eq(data, "hello");
    free(data);
    /* an aborted write leaves the old content */
    lmp_atomic_file af;
    ck_assert_int_eq(lmp_atomic_open(&af, path), 0);
    lmp_atomic_write(&af, "garbage", 7);
    lmp_atomic_abort(&af);
    ck_assert_int_eq(lmp_read_file(path, 0, &data, &len), 0);
    ck_assert_str_eq(data, "hello");
    free(data);
    /* errors name the file */
    ck_assert_int_eq(lmp_read_file(sub, 0, &data, &len), -1);
    ck_assert_ptr_nonnull(strstr(lmp_errmsg(), "is a directory"));
    ck_assert_ptr_nonnull(strstr(lmp_errmsg(), sub));
    ck_assert_int_eq(lmp_read_file(path, 3, &data, &len), -1);
    ck_assert_ptr_nonnull(strstr(lmp_errmsg(), "too large"));
    char *missing = lmp_strfmt("%s/nope", dir);
    ck_assert_int_eq(lmp_read_file(missing, 0, &data, &len), -1);
    char *want = lmp_strfmt("%s: No such file or directory", missing);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);
    ck_assert_int_eq(lmp_mkdirs(path), -1);
    ck_assert_ptr_nonnull(strstr(lmp_errmsg(), "not a directory"));
    char *cmd = lmp_strfmt("rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd), free(missing), free(path), free(sub);
}
END_TEST

START_TEST(edit_distance_and_rng)
{
    ck_assert_int_eq(lmp_edit_distance("rank", "rnak"), 1); /* transposition */
    ck_assert_int_eq(lmp_edit_distance("kitten", "sitting"), 3);
    ck_assert_int_eq(lmp_edit_distance("", "abc"), 3);
    ck_assert_int_eq(lmp_edit_distance("epochs", "epoch"), 1);
    lmp_rng a, b;
    lmp_rng_seed(&a, 42);
    lmp_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) ck_assert_uint_eq(lmp_rng_u64(&a), lmp_rng_u64(&b));
    double sum = 0, sq = 0;
    for (int i = 0; i < 100000; i++) {
        float u = lmp_rng_uniform(&a);
        ck_assert(u >= 0 && u < 1);
        float z = lmp_rng_normal(&a);
        sum += z, sq += z * z;
    }
    ck_assert(fabs(sum / 100000) < 0.02);
    ck_assert(fabs(sq / 100000 - 1) < 0.03);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("util");
    tcase_add_test(tc, sha256_vectors);
    tcase_add_test(tc, atomic_write_and_read);
    tcase_add_test(tc, edit_distance_and_rng);
    suite_add_tcase(s, tc);
    int failed = test_run_suite(s, 0);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
