/* check_bpe.c — the BPE tokenizer without GPT-2's files: byte-level alphabet,
 * pre-tokenizer pieces, loader error messages, the reference merge order,
 * training (byte-exact against train_reference.py), round trips of arbitrary
 * bytes, the special token, decoding errors, and `lmpipe tokenize/detokenize`. */
#include "config.h"
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bpe.h"
#include "cli_tokenize.h"
#include "util.h"
#include "testutil.h"

static char tmp[64];

static void make_tmp(void) { test_mkdtemp(tmp, "bpe"); }
static void remove_tmp(void) { test_rmtree(tmp); }

static char *fixture(const char *rel) { return test_fixture("bpe", rel); }

static void put(const char *name, const char *content)
{
    char *p = lmp_strfmt("%s/%s", tmp, name);
    ck_assert_msg(lmp_write_file_atomic(p, content, strlen(content)) == 0, "%s", lmp_errmsg());
    free(p);
}

/* ------------------------------------------------------------ alphabet */

START_TEST(byte_alphabet)
{
    ck_assert_int_eq(lmp_bpe_byte_char('!'), '!');
    ck_assert_int_eq(lmp_bpe_byte_char('~'), '~');
    ck_assert_int_eq(lmp_bpe_byte_char(0), 0x100);
    ck_assert_int_eq(lmp_bpe_byte_char(' '), 0x120); /* 'Ġ' */
    ck_assert_int_eq(lmp_bpe_byte_char('\n'), 0x10A); /* 'Ċ' */
    ck_assert_int_eq(lmp_bpe_byte_char(0x7F), 0x121);
    ck_assert_int_eq(lmp_bpe_byte_char(0xA0), 0x142);
    ck_assert_int_eq(lmp_bpe_byte_char(0xAD), 0x143);
    ck_assert_int_eq(lmp_bpe_byte_char(0xFF), 0xFF);
    ck_assert_int_eq(lmp_bpe_byte_char(256), -1);
    int seen[0x144] = { 0 };
    for (int b = 0; b < 256; b++) seen[lmp_bpe_byte_char(b)]++;
    for (int c = 0; c < 0x144; c++) ck_assert_int_le(seen[c], 1);
}
END_TEST

/* --------------------------------------------------------- pre-tokenizer */

static char *pieces(lmp_pretok *pt, const char *text, size_t len)
{
    char *out = mallocCheck(2 * len + 2);
    size_t o = 0, pos = 0, s, e, last = 0;
    int r;
    while ((r = lmp_pretok_next(pt, text, len, &pos, &s, &e)) == 1) {
        ck_assert_uint_eq(s, last); /* the pieces cover the text */
        ck_assert_uint_gt(e, s);
        if (s) out[o++] = '|';
        memcpy(out + o, text + s, e - s);
        o += e - s;
        last = e;
    }
    ck_assert_int_eq(r, 0);
    ck_assert_uint_eq(last, len);
    out[o] = 0;
    return out;
}

START_TEST(pretokenizer_pieces)
{
    /* expected pieces from Python's `regex` with GPT-2's pattern */
    static const char *const cases[][2] = {
        { "Hello world", "Hello| world" },
        { "it's", "it|'s" },
        { "IT'S", "IT|'|S" },
        { "don't'll", "don|'t|'ll" },
        { "'''s", "'''|s" },
        { "  hi", " | hi" },
        { "a  \n\nb", "a|  \n|\n|b" },
        { " \t\n x", " \t\n| x" },
        { "trailing  ", "trailing|  " },
        { "123abc", "123|abc" },
        { "$19.99", "$|19|.|99" },
        { "x\xc2\x85\xc2\x85 y", "x|\xc2\x85\xc2\x85| y" },     /* U+0085 is whitespace */
        { "a\xc2\xa0" "b", "a|\xc2\xa0|b" },                    /* U+00A0 too */
        { "\xe6\x97\xa5\xe6\x9c\xac \xe3\x83\x86", "\xe6\x97\xa5\xe6\x9c\xac| \xe3\x83\x86" },
        { "\xf0\x9f\x98\x80\xf0\x9f\x91\x8d!", "\xf0\x9f\x98\x80\xf0\x9f\x91\x8d!" },
        { "x\xef\xbb\xbfy", "x|\xef\xbb\xbf|y" },               /* U+FEFF is not whitespace */
    };
    lmp_pretok *pt;
    ck_assert_int_eq(lmp_pretok_new(&pt), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = pieces(pt, cases[i][0], strlen(cases[i][0]));
        ck_assert_msg(strcmp(got, cases[i][1]) == 0, "case %zu: got \"%s\"", i, got);
        free(got);
    }
    lmp_pretok_free(pt);
}
END_TEST

/* \s is Python regex's (Unicode White_Space): "a " c "b" splits as a| |c|b for
 * whitespace c and as a| c|b otherwise (checked against Python's `regex`). */
START_TEST(pretokenizer_whitespace_set)
{
    static const int ws[] = { 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0xA0, 0x1680, 0x2000, 0x2001,
                              0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009,
                              0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000 };
    static const int not_ws[] = { 0x00, 0x1C, 0x1F, 0x7F, 0x180E, 0x200B, 0x2060, 0xFEFF };
    lmp_pretok *pt;
    ck_assert_int_eq(lmp_pretok_new(&pt), 0);
    for (size_t k = 0; k < 2; k++) {
        const int *set = k ? not_ws : ws;
        size_t n = k ? sizeof not_ws / sizeof *not_ws : sizeof ws / sizeof *ws;
        for (size_t i = 0; i < n; i++) {
            char c[4] = { 0 }, in[16], want[16];
            int cp = set[i];
            if (cp < 0x80) c[0] = (char)cp;
            else if (cp < 0x800) c[0] = (char)(0xC0 | cp >> 6), c[1] = (char)(0x80 | (cp & 0x3F));
            else c[0] = (char)(0xE0 | cp >> 12), c[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
                 c[2] = (char)(0x80 | (cp & 0x3F));
            size_t cl = cp ? strlen(c) : 1;
            memcpy(in, "a ", 2);
            memcpy(in + 2, c, cl);
            in[2 + cl] = 'b';
            size_t wl = (size_t)sprintf(want, "a|%s", k ? " " : " |");
            memcpy(want + wl, c, cl);
            memcpy(want + wl + cl, "|b", 2);
            wl += cl + 2;
            char *got = pieces(pt, in, 3 + cl);
            ck_assert_msg(memcmp(got, want, wl) == 0 && got[wl] == 0, "U+%04X split wrongly", cp);
            free(got);
        }
    }
    lmp_pretok_free(pt);
}
END_TEST

START_TEST(pretokenizer_invalid_utf8)
{
    /* invalid sequences are pieces of their own; the regex matches around them */
    static const struct { const char *in; size_t len; const char *want; } cases[] = {
        { "ab\xff" "cd", 5, "ab|\xff|cd" },
        { " \xc3(", 3, " |\xc3|(" },
        { "\xed\xa0\x80x", 4, "\xed\xa0\x80|x" },       /* a UTF-16 surrogate */
        { "\xc0\xaf\xe2\x82", 4, "\xc0\xaf\xe2\x82" },   /* overlong, then truncated */
        { "a\0b", 3, "a|\0|b" },                         /* NUL is a valid character */
    };
    lmp_pretok *pt;
    ck_assert_int_eq(lmp_pretok_new(&pt), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = pieces(pt, cases[i].in, cases[i].len);
        size_t wl = strlen(cases[i].want) + (i == 4 ? 3 : 0);
        ck_assert_msg(memcmp(got, cases[i].want, wl) == 0, "case %zu", i);
        free(got);
    }
    lmp_pretok_free(pt);
}
END_TEST

/* --------------------------------------------------------------- loading */

/* A vocab.json with the 256 byte tokens (id = byte) and then `extra`. */
static char *byte_vocab(const char *extra, int skip_byte)
{
    char *s = mallocCheck(8192), *w = s;
    *w++ = '{';
    for (int b = 0; b < 256; b++) {
        if (b == skip_byte) continue;
        int c = lmp_bpe_byte_char(b);
        w += sprintf(w, "%s\"", w - s > 1 ? ", " : "");
        if (c == '"' || c == '\\') *w++ = '\\', *w++ = (char)c;
        else if (c < 0x80) *w++ = (char)c;
        else *w++ = (char)(0xC0 | (c >> 6)), *w++ = (char)(0x80 | (c & 0x3F));
        w += sprintf(w, "\": %d", b);
    }
    sprintf(w, "%s}", extra);
    return s;
}

/* Load tmp/vocab.json + tmp/merges.txt made from the arguments; return the message. */
static const char *load_msg(const char *vocab, const char *merges)
{
    put("vocab.json", vocab);
    put("merges.txt", merges);
    lmp_bpe *bpe;
    char *v = lmp_strfmt("%s/vocab.json", tmp), *m = lmp_strfmt("%s/merges.txt", tmp);
    int rc = lmp_bpe_load(v, m, &bpe);
    free(v);
    free(m);
    ck_assert_int_eq(rc, -1);
    ck_assert_ptr_null(bpe);
    return lmp_errmsg();
}

#define ASSERT_MSG(got, ...) do {                                        \
        char *want_ = lmp_strfmt(__VA_ARGS__);                           \
        ck_assert_str_eq(got, want_);                                    \
        free(want_);                                                     \
    } while (0)

START_TEST(load_errors_vocab)
{
    make_tmp();
    const char *V = "vocab.json";
    char *good = byte_vocab(", \"ab\": 256, \"abc\": 257", -1);
    lmp_bpe *bpe;
    /* the good pair loads */
    put("vocab.json", good);
    put("merges.txt", "#version: 0.2\na b\nab c\n");
    ck_assert_int_eq(lmp_bpe_load_dir(tmp, &bpe), 0);
    ck_assert_int_eq(lmp_bpe_vocab_size(bpe), 258);
    ck_assert_int_eq(lmp_bpe_eot(bpe), -1);
    lmp_bpe_free(bpe);

    char *v = lmp_strfmt("%s/nope.json", tmp), *m = lmp_strfmt("%s/merges.txt", tmp);
    ck_assert_int_eq(lmp_bpe_load(v, m, &bpe), -1);
    ASSERT_MSG(lmp_errmsg(), "%s/nope.json: No such file or directory", tmp);
    ck_assert_int_eq(lmp_bpe_load(tmp, m, &bpe), -1);
    ASSERT_MSG(lmp_errmsg(), "%s: is a directory, expected a file", tmp);
    free(v);
    free(m);

    ASSERT_MSG(load_msg("{\"a\": 0, \"b\"", ""),
               "%s/%s:1:12: not valid JSON: ':' expected near end of file", tmp, V);
    ASSERT_MSG(load_msg("{\n  \"a\": 0,\n  \"b\": ,\n}\n", ""),
               "%s/%s:3:8: not valid JSON: unexpected token near ','", tmp, V);
    ASSERT_MSG(load_msg("", ""), "%s/%s: empty file (expected a JSON object mapping tokens to ids)", tmp, V);
    ASSERT_MSG(load_msg("[0, 1]", ""), "%s/%s: expected a JSON object mapping tokens to ids", tmp, V);
    ASSERT_MSG(load_msg("{}", ""), "%s/%s: no tokens", tmp, V);
    ASSERT_MSG(load_msg("{\"a\": 0,\n \"a\": 1}", ""),
               "%s/%s:2:4: not valid JSON: duplicate object key near '\"a\"'", tmp, V);
    ASSERT_MSG(load_msg("{\"a\": \"0\"}", ""), "%s/%s: token \"a\": id is not an integer", tmp, V);
    char *s = byte_vocab(", \"ab\": 97", -1);
    ASSERT_MSG(load_msg(s, ""), "%s/%s: duplicate id 97 (tokens \"a\" and \"ab\")", tmp, V);
    free(s);
    s = byte_vocab(", \"ab\": 300", -1);
    ASSERT_MSG(load_msg(s, ""), "%s/%s: ids are not dense: token \"ab\" has id 300, but 257 tokens "
                                "need ids 0..256", tmp, V);
    free(s);
    s = byte_vocab(", \"ab\": -1", -1);
    ASSERT_MSG(load_msg(s, ""), "%s/%s: ids are not dense: token \"ab\" has id -1, but 257 tokens "
                                "need ids 0..256", tmp, V);
    free(s);
    s = byte_vocab(", \"a b\": 256", -1);
    ASSERT_MSG(load_msg(s, ""), "%s/%s: token \"a b\" (id 256) has the character U+0020, which is "
                                "not in the byte-level alphabet", tmp, V);
    free(s);
    s = byte_vocab(", \"\": 256", -1);
    ASSERT_MSG(load_msg(s, ""), "%s/%s: empty token (id 256)", tmp, V);
    free(s);
    s = byte_vocab(", \"ab\": 32", ' '); /* no token for the space byte */
    ASSERT_MSG(load_msg(s, ""), "%s/%s: no token for byte 0x20 (\"\xc4\xa0\")", tmp, V);
    free(s);
    free(good);
    remove_tmp();
}
END_TEST

START_TEST(load_errors_merges)
{
    make_tmp();
    char *good = byte_vocab(", \"ab\": 256, \"abc\": 257", -1);
    const char *M = "merges.txt";
    lmp_bpe *bpe;
    put("vocab.json", good);
    char *v = lmp_strfmt("%s/vocab.json", tmp), *m = lmp_strfmt("%s/nope.txt", tmp);
    ck_assert_int_eq(lmp_bpe_load(v, m, &bpe), -1);
    ASSERT_MSG(lmp_errmsg(), "%s/nope.txt: No such file or directory", tmp);
    free(v);
    free(m);
    const char *bad_lines[] = { "a", "a  b", "a b c", " a", "a ", "" };
    for (size_t i = 0; i < sizeof bad_lines / sizeof *bad_lines; i++) {
        char *mt = lmp_strfmt("#version: 0.2\na b\n%s\nab c\n", bad_lines[i]);
        ASSERT_MSG(load_msg(good, mt), "%s/%s:3: malformed merge line \"%s\" (expected two "
                                       "symbols separated by one space)", tmp, M, bad_lines[i]);
        free(mt);
    }
    ASSERT_MSG(load_msg(good, "a b\nab zz\n"),
               "%s/%s:2: unknown symbol \"zz\" (not a token in %s/vocab.json)", tmp, M, tmp);
    ASSERT_MSG(load_msg(good, "#version: 0.2\nqq b\n"),
               "%s/%s:2: unknown symbol \"qq\" (not a token in %s/vocab.json)", tmp, M, tmp);
    ASSERT_MSG(load_msg(good, "#version: 0.2\nzz ab\n"),
               "%s/%s:2: unknown symbol \"zz\" (not a token in %s/vocab.json)", tmp, M, tmp);
    ASSERT_MSG(load_msg(good, "#version: 0.2\na b\nb c\n"),
               "%s/%s:3: merge result \"bc\" is not a token in %s/vocab.json", tmp, M, tmp);
    ASSERT_MSG(load_msg(good, "#version: 0.2\na b\nab c\na b\n"),
               "%s/%s:4: duplicate merge \"a b\" (first on line 2)", tmp, M);
    /* accepted: no #version line, CRLF line ends, no final newline */
    put("merges.txt", "a b\r\nab c");
    ck_assert_msg(lmp_bpe_load_dir(tmp, &bpe) == 0, "%s", lmp_errmsg());
    int *ids;
    size_t n;
    ck_assert_int_eq(lmp_bpe_encode(bpe, "abcab", 5, 0, &ids, &n), 0);
    ck_assert_uint_eq(n, 2); /* one piece: "abc" + "ab" */
    ck_assert_int_eq(ids[0], 257);
    ck_assert_int_eq(ids[1], 256);
    free(ids);
    ck_assert_int_eq(lmp_bpe_encode(bpe, "abc ab", 6, 0, &ids, &n), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(ids[0], 257);
    ck_assert_int_eq(ids[1], ' ');
    ck_assert_int_eq(ids[2], 256);
    free(ids);
    lmp_bpe_free(bpe);
    free(good);
    remove_tmp();
}
END_TEST

START_TEST(load_dir_errors)
{
    make_tmp();
    lmp_bpe *bpe;
    char *d = lmp_strfmt("%s/missing", tmp);
    ck_assert_int_eq(lmp_bpe_load_dir(d, &bpe), -1);
    ASSERT_MSG(lmp_errmsg(), "%s/missing: No such file or directory", tmp);
    ck_assert_int_eq(lmp_bpe_load_dir(tmp, &bpe), -1);
    ASSERT_MSG(lmp_errmsg(), "%s: no tokenizer files (expected vocab.json + merges.txt or "
                             "encoder.json + vocab.bpe)", tmp);
    put("encoder.json", "{}");
    ck_assert_int_eq(lmp_bpe_load_dir(tmp, &bpe), -1);
    ASSERT_MSG(lmp_errmsg(), "%s/encoder.json: no tokens", tmp);
    put("x", "");
    free(d);
    d = lmp_strfmt("%s/x", tmp);
    ck_assert_int_eq(lmp_bpe_load_dir(d, &bpe), -1);
    ASSERT_MSG(lmp_errmsg(), "%s/x: not a directory", tmp);
    free(d);
    remove_tmp();
}
END_TEST

/* A merge list where a merge uses a symbol only a later merge makes: the
 * reference loop (merge every "a b" first, then look again) gives "abab",
 * where merging the lowest rank as soon as it appears would give "aba" "b". */
START_TEST(unordered_merges_follow_reference)
{
    make_tmp();
    char *v = byte_vocab(", \"ab\": 256, \"aba\": 257, \"abab\": 258", -1);
    put("vocab.json", v);
    put("merges.txt", "#version: 0.2\nab a\na b\nab ab\n");
    lmp_bpe *bpe;
    int *ids;
    size_t n;
    ck_assert_int_eq(lmp_bpe_load_dir(tmp, &bpe), 0);
    ck_assert_int_eq(lmp_bpe_is_ordered(bpe), 0);
    ck_assert_int_eq(lmp_bpe_encode(bpe, "abab", 4, 0, &ids, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ids[0], 258);
    free(ids);
    /* "ab ab a": then "ab a" (rank 0) beats "ab ab" (rank 2) */
    ck_assert_int_eq(lmp_bpe_encode(bpe, "ababa", 5, 0, &ids, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 256);
    ck_assert_int_eq(ids[1], 257);
    free(ids);
    lmp_bpe_free(bpe);
    /* the same merges in a buildable order take the heap path, same result */
    put("merges.txt", "#version: 0.2\na b\nab a\nab ab\n");
    ck_assert_int_eq(lmp_bpe_load_dir(tmp, &bpe), 0);
    ck_assert_int_eq(lmp_bpe_is_ordered(bpe), 1);
    ck_assert_int_eq(lmp_bpe_encode(bpe, "abab", 4, 0, &ids, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ids[0], 258);
    free(ids);
    /* "aba b" would be wrong: in "abab" both "a b" go first */
    ck_assert_int_eq(lmp_bpe_encode(bpe, "ababab", 6, 0, &ids, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 258);
    ck_assert_int_eq(ids[1], 256);
    free(ids);
    lmp_bpe_free(bpe);
    free(v);
    remove_tmp();
}
END_TEST

/* -------------------------------------------------------------- training */

static const char *const CORPUS[] = { "code", "control", "edge", "numbers", "prose",
                                      "unicode", "whitespace" };

static void assert_same_file(const char *a, const char *b)
{
    char *da, *db;
    size_t la, lb;
    ck_assert_msg(lmp_read_file(a, 0, &da, &la) == 0, "%s", lmp_errmsg());
    ck_assert_msg(lmp_read_file(b, 0, &db, &lb) == 0, "%s", lmp_errmsg());
    ck_assert_msg(la == lb && memcmp(da, db, la) == 0, "%s and %s differ", a, b);
    free(da);
    free(db);
}

static void assert_roundtrip(lmp_bpe *bpe, const char *text, size_t len, int flags)
{
    int *ids;
    size_t n, dl;
    char *back;
    ck_assert_msg(lmp_bpe_encode(bpe, text, len, flags, &ids, &n) == 0, "%s", lmp_errmsg());
    ck_assert_msg(lmp_bpe_decode(bpe, ids, n, &back, &dl) == 0, "%s", lmp_errmsg());
    ck_assert_uint_eq(dl, len);
    ck_assert(memcmp(back, text, len) == 0);
    free(ids);
    free(back);
}

START_TEST(train_matches_reference)
{
    make_tmp();
    char *files[2] = { fixture("corpus/prose.txt"), fixture("corpus/code.txt") };
    char *out = lmp_strfmt("%s/trained/sub", tmp);
    ck_assert_msg(lmp_bpe_train((const char *const *)files, 2, 400, out, 2) == 0, "%s", lmp_errmsg());
    char *got = lmp_strfmt("%s/merges.txt", out), *want = fixture("trained/merges.txt");
    assert_same_file(got, want);
    free(got);
    free(want);
    got = lmp_strfmt("%s/vocab.json", out);
    want = fixture("trained/vocab.json");
    assert_same_file(got, want);
    free(got);
    free(want);
    /* the vocabulary starts exactly like GPT-2's encoder.json */
    char *data;
    size_t len;
    got = lmp_strfmt("%s/vocab.json", out);
    ck_assert_int_eq(lmp_read_file(got, 0, &data, &len), 0);
    ck_assert(strncmp(data, "{\"!\": 0, \"\\\"\": 1, \"#\": 2,", 24) == 0);
    ck_assert_ptr_nonnull(strstr(data, ", \"\\u0100\": 188, "));
    ck_assert_ptr_nonnull(strstr(data, ", \"\\u0143\": 255, \""));
    ck_assert_ptr_nonnull(strstr(data, ", \"<|endoftext|>\": 399}"));
    free(data);
    free(got);

    lmp_bpe *bpe;
    ck_assert_msg(lmp_bpe_load_dir(out, &bpe) == 0, "%s", lmp_errmsg());
    ck_assert_int_eq(lmp_bpe_vocab_size(bpe), 400);
    ck_assert_int_eq(lmp_bpe_eot(bpe), 399);
    ck_assert_int_eq(lmp_bpe_is_ordered(bpe), 1);
    for (size_t i = 0; i < sizeof CORPUS / sizeof *CORPUS; i++) {
        char *rel = lmp_strfmt("corpus/%s.txt", CORPUS[i]), *p = fixture(rel);
        ck_assert_int_eq(lmp_read_file(p, 0, &data, &len), 0);
        assert_roundtrip(bpe, data, len, 0);
        assert_roundtrip(bpe, data, len, LMP_BPE_SPECIAL);
        if (!strcmp(CORPUS[i], "prose")) { /* it learned something from it */
            int *ids;
            size_t n;
            ck_assert_int_eq(lmp_bpe_encode(bpe, data, len, 0, &ids, &n), 0);
            ck_assert_uint_lt(n, len * 2 / 3);
            free(ids);
        }
        free(data);
        free(p);
        free(rel);
    }
    lmp_bpe_free(bpe);
    free(out);
    free(files[0]);
    free(files[1]);
    remove_tmp();
}
END_TEST

START_TEST(train_errors)
{
    make_tmp();
    char *f = fixture("corpus/prose.txt"), *missing = lmp_strfmt("%s/none.txt", tmp);
    const char *files[2] = { f, missing };
    ck_assert_int_eq(lmp_bpe_train(files, 1, 256, tmp, 1), -1);
    ck_assert_str_eq(lmp_errmsg(), "bpe train: vocab_size 256 is too small (at least 257: 256 "
                                   "bytes and <|endoftext|>)");
    ck_assert_int_eq(lmp_bpe_train(files, 0, 300, tmp, 1), -1);
    ck_assert_str_eq(lmp_errmsg(), "bpe train: no input files");
    ck_assert_int_eq(lmp_bpe_train(files, 1, 300, tmp, 0), -1);
    ck_assert_str_eq(lmp_errmsg(), "bpe train: min_count 0 must be at least 1");
    ck_assert_int_eq(lmp_bpe_train(files, 2, 300, tmp, 1), -1);
    ASSERT_MSG(lmp_errmsg(), "%s: No such file or directory", missing);
    /* 257: no merges at all, still a loadable vocabulary */
    ck_assert_int_eq(lmp_bpe_train(files, 1, 257, tmp, 1), 0);
    lmp_bpe *bpe;
    ck_assert_int_eq(lmp_bpe_load_dir(tmp, &bpe), 0);
    ck_assert_int_eq(lmp_bpe_vocab_size(bpe), 257);
    int *ids;
    size_t n;
    ck_assert_int_eq(lmp_bpe_encode(bpe, "hello", 5, 0, &ids, &n), 0);
    ck_assert_uint_eq(n, 5);
    free(ids);
    lmp_bpe_free(bpe);
    /* a tiny exact case: in "aaabdaaabac", "a a" occurs 4 times; then "aa a"
     * and "a b" twice each, and the tie goes to the smaller ids (a = 64,
     * b = 65, aa = 256); then "aa ab" twice */
    put("in.txt", "aaabdaaabac");
    char *in = lmp_strfmt("%s/in.txt", tmp);
    const char *one[1] = { in };
    ck_assert_int_eq(lmp_bpe_train(one, 1, 260, tmp, 2), 0);
    char *mp = lmp_strfmt("%s/merges.txt", tmp), *data;
    size_t len;
    ck_assert_int_eq(lmp_read_file(mp, 0, &data, &len), 0);
    ck_assert_str_eq(data, "#version: 0.2\na a\na b\naa ab\n");
    free(data);
    free(mp);
    free(in);
    free(f);
    free(missing);
    remove_tmp();
}
END_TEST

/* ------------------------------------------------- encoding and decoding */

static lmp_bpe *trained(void)
{
    char *files[1] = { fixture("corpus/prose.txt") };
    ck_assert_msg(lmp_bpe_train((const char *const *)files, 1, 500, tmp, 1) == 0, "%s", lmp_errmsg());
    free(files[0]);
    lmp_bpe *bpe;
    ck_assert_msg(lmp_bpe_load_dir(tmp, &bpe) == 0, "%s", lmp_errmsg());
    return bpe;
}

START_TEST(roundtrip_any_bytes)
{
    make_tmp();
    lmp_bpe *bpe = trained();
    lmp_bpe *small = trained();
    lmp_bpe_set_cache(small, 4); /* emptied all the time */
    lmp_bpe *none = trained();
    lmp_bpe_set_cache(none, 0);
    lmp_rng rng;
    lmp_rng_seed(&rng, 7);
    static const char *const bits[] = { "the", " ", "  ", "\n", "'s", "\xc3\xa9", "\xf0\x9f\x98\x80",
                                        "\xff", "\xc3", "\xe2\x82", "1", "<|endoftext|>", "\0", "\t" };
    char buf[4096];
    for (int iter = 0; iter < 300; iter++) {
        size_t len = 0, want = lmp_rng_u64(&rng) % 1000;
        while (len < want) {
            if (lmp_rng_u64(&rng) % 3 == 0) { /* a random byte */
                buf[len++] = (char)(lmp_rng_u64(&rng) & 0xFF);
            } else {
                int k = (int)(lmp_rng_u64(&rng) % (sizeof bits / sizeof *bits));
                size_t bl = k == 12 ? 1 : strlen(bits[k]);
                memcpy(buf + len, bits[k], bl);
                len += bl;
            }
        }
        assert_roundtrip(bpe, buf, len, 0);
        assert_roundtrip(bpe, buf, len, LMP_BPE_SPECIAL);
        int *a, *b, *c;
        size_t na, nb, nc;
        ck_assert_int_eq(lmp_bpe_encode(bpe, buf, len, 0, &a, &na), 0);
        ck_assert_int_eq(lmp_bpe_encode(small, buf, len, 0, &b, &nb), 0);
        ck_assert_int_eq(lmp_bpe_encode(none, buf, len, 0, &c, &nc), 0);
        ck_assert_uint_eq(na, nb);
        ck_assert_uint_eq(na, nc);
        ck_assert(memcmp(a, b, na * sizeof *a) == 0 && memcmp(a, c, na * sizeof *a) == 0);
        free(a);
        free(b);
        free(c);
    }
    /* long runs: one piece of 200000 bytes each, through the heap loop */
    size_t big = 200000;
    char *s = mallocCheck(big);
    const char fills[] = { ' ', 'a', '\xff', '7', '!' };
    for (size_t f = 0; f < sizeof fills; f++) {
        memset(s, fills[f], big);
        assert_roundtrip(bpe, s, big, 0);
    }
    for (size_t i = 0; i < big; i++) s[i] = "ab"[i % 2];
    assert_roundtrip(bpe, s, big, 0);
    free(s);
    lmp_bpe_free(bpe);
    lmp_bpe_free(small);
    lmp_bpe_free(none);
    remove_tmp();
}
END_TEST

/* Encode text fed `chunk` bytes at a time through lmp_bpe_encode_stream,
 * holding only what it hands back (in a buffer of exactly that size, so a
 * read past it is a sanitizer error), and compare with one encode. */
static void assert_stream_equals_whole(lmp_bpe *bpe, const char *text, size_t len, size_t chunk,
                                       int flags)
{
    int *want, *ids = NULL;
    size_t nw, n = 0, cap = 0, start = 0, have = 0;
    ck_assert_int_eq(lmp_bpe_encode(bpe, text, len, flags, &want, &nw), 0);
    for (;;) {
        size_t add = len - start - have < chunk ? len - start - have : chunk, used;
        have += add;
        int final = start + have == len;
        char *buf = mallocCheck(have ? have : 1);
        memcpy(buf, text + start, have);
        ck_assert_int_eq(lmp_bpe_encode_stream(bpe, buf, have, final, flags, &ids, &n, &cap, &used), 0);
        free(buf);
        ck_assert_uint_le(used, have);
        ck_assert(final || have - used <= chunk + 64); /* short pieces: little held back */
        start += used;
        have -= used;
        if (final) break;
    }
    ck_assert_uint_eq(have, 0);
    size_t i = 0;
    while (i < n && i < nw && ids[i] == want[i]) i++;
    ck_assert_msg(i == n && i == nw, "chunk %zu, flags %d: ids differ at %zu of %zu/%zu", chunk, flags, i,
                  n, nw);
    free(ids);
    free(want);
}

/* Cut anywhere (inside characters, contractions, whitespace runs before a
 * word, "<|endoftext|>", runs of invalid bytes), the streamed ids are those
 * of one encode. */
START_TEST(stream_equals_whole)
{
    make_tmp();
    lmp_bpe *bpe = trained();
    lmp_rng rng;
    lmp_rng_seed(&rng, 11);
    static const char *const bits[] = { "the", " ", "   ", "\n", "\n\n", "'s", "'re", "'ll", "'ve", "'",
                                        "it", "\xc3\xa9", "\xe3\x80\x80", "\xc2\x85", "\xf0\x9f\x98\x80",
                                        "\xff", "\xc3", "\xe2\x82", "12", "<|endoftext|>", "<|endof", "!!",
                                        "\t", "word", " x", "\r\n" };
    char buf[2048];
    for (int iter = 0; iter < 60; iter++) {
        size_t len = 0, want = 200 + lmp_rng_u64(&rng) % 1500;
        while (len < want) {
            int k = (int)(lmp_rng_u64(&rng) % (sizeof bits / sizeof *bits));
            size_t bl = strlen(bits[k]);
            memcpy(buf + len, bits[k], bl);
            len += bl;
        }
        for (size_t chunk = 1; chunk <= 24; chunk++) {
            assert_stream_equals_whole(bpe, buf, len, chunk, 0);
            assert_stream_equals_whole(bpe, buf, len, chunk, LMP_BPE_SPECIAL);
        }
        assert_stream_equals_whole(bpe, buf, len, 97, LMP_BPE_SPECIAL);
        assert_stream_equals_whole(bpe, buf, len, len, 0);
    }
    char *prose = fixture("corpus/prose.txt"), *text;
    size_t len;
    ck_assert_int_eq(lmp_read_file(prose, 0, &text, &len), 0);
    for (size_t chunk = 1; chunk <= 9; chunk++) assert_stream_equals_whole(bpe, text, len, chunk, 0);
    assert_stream_equals_whole(bpe, text, len, 4096, 0);
    /* a long pre-token is held back whole until it ends */
    char *run = mallocCheck(5000);
    memset(run, '!', 4970);
    memcpy(run + 4970, " and the end of all of it, ok.", 30);
    int *ids = NULL;
    size_t n = 0, cap = 0, used;
    ck_assert_int_eq(lmp_bpe_encode_stream(bpe, run, 4000, 0, 0, &ids, &n, &cap, &used), 0);
    ck_assert_uint_eq(used, 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(lmp_bpe_encode_stream(bpe, run, 5000, 0, 0, &ids, &n, &cap, &used), 0);
    /* "!!!...", " and", " the", " end"; " of" ends within 16 bytes of the end */
    ck_assert_uint_eq(used, 4970 + 12);
    free(ids);
    free(run);
    free(text);
    free(prose);
    lmp_bpe_free(bpe);
    remove_tmp();
}
END_TEST

START_TEST(special_token_and_decode_errors)
{
    make_tmp();
    lmp_bpe *bpe = trained();
    int eot = lmp_bpe_eot(bpe), *ids;
    ck_assert_int_eq(eot, 499);
    size_t n, len;
    const char *t = "a<|endoftext|>b<|endoftext|>";
    ck_assert_int_eq(lmp_bpe_encode(bpe, t, strlen(t), LMP_BPE_SPECIAL, &ids, &n), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(ids[0], 'a' - '!');  /* ids 0..93 are '!'..'~' */
    ck_assert_int_eq(ids[1], eot);
    ck_assert_int_eq(ids[2], 'b' - '!');
    ck_assert_int_eq(ids[3], eot);
    free(ids);
    ck_assert_int_eq(lmp_bpe_encode(bpe, t, strlen(t), 0, &ids, &n), 0);
    ck_assert_uint_gt(n, 4);
    for (size_t i = 0; i < n; i++) ck_assert_int_ne(ids[i], eot);
    free(ids);
    ck_assert_int_eq(lmp_bpe_encode(bpe, "", 0, LMP_BPE_SPECIAL, &ids, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_nonnull(ids);
    free(ids);
    /* a stream of documents */
    int *all = NULL;
    size_t na = 0, cap = 0;
    for (int d = 0; d < 3; d++) {
        ck_assert_int_eq(lmp_bpe_encode_append(bpe, "doc", 3, 0, &all, &na, &cap), 0);
        ck_assert_int_eq(lmp_bpe_encode_append(bpe, "<|endoftext|>", 13, LMP_BPE_SPECIAL, &all, &na, &cap), 0);
    }
    char *text;
    ck_assert_int_eq(lmp_bpe_decode(bpe, all, na, &text, &len), 0);
    ck_assert_str_eq(text, "doc<|endoftext|>doc<|endoftext|>doc<|endoftext|>");
    free(text);
    free(all);
    const char *tok = lmp_bpe_token(bpe, eot, &len);
    ck_assert_uint_eq(len, 13);
    ck_assert(memcmp(tok, "<|endoftext|>", 13) == 0);
    ck_assert_ptr_null(lmp_bpe_token(bpe, 500, &len));
    ck_assert_ptr_null(lmp_bpe_token(bpe, -1, &len));
    int bad[3] = { 1, 500, 2 };
    ck_assert_int_eq(lmp_bpe_decode(bpe, bad, 3, &text, &len), -1);
    ck_assert_ptr_null(text);
    ck_assert_str_eq(lmp_errmsg(), "token id 500 out of range (the vocabulary has ids 0..499)");
    bad[1] = -3;
    ck_assert_int_eq(lmp_bpe_decode(bpe, bad, 3, &text, &len), -1);
    ck_assert_str_eq(lmp_errmsg(), "token id -3 out of range (the vocabulary has ids 0..499)");
    lmp_bpe_free(bpe);
    remove_tmp();
}
END_TEST

/* --------------------------------------------------------- command line */

typedef struct {
    int rc;
    char *out, *err;
    size_t out_len;
} cli_result;

/* Run fn(argv) with stdin from in_path (or /dev/null), capturing stdout and stderr. */
static cli_result run_cli(int (*fn)(int, char **), const char *in_path, const char *const *args)
{
    char *argv[16];
    int argc = 0;
    for (; args[argc]; argc++) argv[argc] = (char *)args[argc];
    argv[argc] = NULL;
    char *op = lmp_strfmt("%s/cli.out", tmp), *ep = lmp_strfmt("%s/cli.err", tmp);
    fflush(stdout);
    fflush(stderr);
    int s0 = dup(0), s1 = dup(1), s2 = dup(2);
    int i0 = open(in_path ? in_path : "/dev/null", O_RDONLY);
    int o1 = open(op, O_WRONLY | O_CREAT | O_TRUNC, 0600), o2 = open(ep, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert(i0 >= 0 && o1 >= 0 && o2 >= 0);
    dup2(i0, 0), dup2(o1, 1), dup2(o2, 2);
    clearerr(stdin);
    cli_result r;
    r.rc = fn(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(s0, 0), dup2(s1, 1), dup2(s2, 2);
    close(s0), close(s1), close(s2), close(i0), close(o1), close(o2);
    clearerr(stdin);
    size_t el;
    ck_assert_int_eq(lmp_read_file(op, 0, &r.out, &r.out_len), 0);
    ck_assert_int_eq(lmp_read_file(ep, 0, &r.err, &el), 0);
    free(op);
    free(ep);
    return r;
}

static void free_result(cli_result *r)
{
    free(r->out);
    free(r->err);
}

START_TEST(cli_tokenize_detokenize)
{
    make_tmp();
    lmp_bpe *bpe = trained();
    char *vdir = strdupCheck(tmp);
    char *prose = fixture("corpus/prose.txt");
    /* the ids, as one line */
    cli_result r = run_cli(lmp_cli_tokenize, NULL,
                           (const char *[]){ "tokenize", "--vocab", vdir, prose, NULL });
    ck_assert_int_eq(r.rc, 0);
    ck_assert_str_eq(r.err, "");
    char *text;
    size_t len, n;
    int *ids;
    ck_assert_int_eq(lmp_read_file(prose, 0, &text, &len), 0);
    ck_assert_int_eq(lmp_bpe_encode(bpe, text, len, 0, &ids, &n), 0);
    char *line = mallocCheck(n * 12 + 2), *w = line;
    for (size_t i = 0; i < n; i++) w += sprintf(w, i ? " %d" : "%d", ids[i]);
    strcpy(w, "\n");
    ck_assert_str_eq(r.out, line);
    ck_assert(strchr(r.out, '\n') == r.out + r.out_len - 1); /* one line */
    /* and back, from stdin and from a file */
    char *idfile = lmp_strfmt("%s/ids.txt", tmp);
    ck_assert_int_eq(lmp_write_file_atomic(idfile, r.out, r.out_len), 0);
    free_result(&r);
    r = run_cli(lmp_cli_detokenize, idfile, (const char *[]){ "detokenize", "--vocab", vdir, NULL });
    ck_assert_int_eq(r.rc, 0);
    ck_assert_uint_eq(r.out_len, len);
    ck_assert(memcmp(r.out, text, len) == 0);
    free_result(&r);
    char *vopt = lmp_strfmt("--vocab=%s", vdir);
    r = run_cli(lmp_cli_detokenize, NULL, (const char *[]){ "detokenize", vopt, idfile, NULL });
    ck_assert_int_eq(r.rc, 0);
    ck_assert_uint_eq(r.out_len, len);
    ck_assert(memcmp(r.out, text, len) == 0);
    free_result(&r);
    free(vopt);
    /* commas and any whitespace separate ids */
    put("ids2.txt", " 71,72 ,\n\t73,,74\n");
    char *ids2 = lmp_strfmt("%s/ids2.txt", tmp);
    r = run_cli(lmp_cli_detokenize, NULL,
                (const char *[]){ "detokenize", "--vocab", vdir, ids2, NULL });
    ck_assert_int_eq(r.rc, 0);
    ck_assert_str_eq(r.out, "hijk");
    free_result(&r);
    /* --special, from stdin via "-" */
    put("eot.txt", "a<|endoftext|>");
    char *eotf = lmp_strfmt("%s/eot.txt", tmp);
    r = run_cli(lmp_cli_tokenize, eotf, (const char *[]){ "tokenize", "--vocab", vdir, "--special", "-", NULL });
    ck_assert_int_eq(r.rc, 0);
    ck_assert_str_eq(r.out, "64 499\n");
    free_result(&r);
    r = run_cli(lmp_cli_tokenize, NULL, (const char *[]){ "tokenize", "--vocab", vdir, NULL });
    ck_assert_int_eq(r.rc, 0);
    ck_assert_str_eq(r.out, "\n"); /* empty input: an empty line */
    free_result(&r);
    /* errors */
    put("bad1.txt", "12 499 500 3");
    put("bad2.txt", "12 4x9");
    put("bad3.txt", "99999999999999999999999");
    char *b1 = lmp_strfmt("%s/bad1.txt", tmp), *b2 = lmp_strfmt("%s/bad2.txt", tmp),
         *b3 = lmp_strfmt("%s/bad3.txt", tmp);
    r = run_cli(lmp_cli_detokenize, NULL, (const char *[]){ "detokenize", "--vocab", vdir, b1, NULL });
    ck_assert_int_eq(r.rc, 1);
    ck_assert_str_eq(r.out, "");
    ck_assert_str_eq(r.err, "lmpipe detokenize: token id 500 out of range (the vocabulary has ids 0..499)\n");
    free_result(&r);
    r = run_cli(lmp_cli_detokenize, NULL, (const char *[]){ "detokenize", "--vocab", vdir, b2, NULL });
    ck_assert_int_eq(r.rc, 1);
    ASSERT_MSG(r.err, "lmpipe detokenize: %s: invalid token id \"4x9\"\n", b2);
    free_result(&r);
    r = run_cli(lmp_cli_detokenize, b2, (const char *[]){ "detokenize", "--vocab", vdir, NULL });
    ck_assert_str_eq(r.err, "lmpipe detokenize: <stdin>: invalid token id \"4x9\"\n");
    free_result(&r);
    r = run_cli(lmp_cli_detokenize, NULL, (const char *[]){ "detokenize", "--vocab", vdir, b3, NULL });
    ck_assert_int_eq(r.rc, 1);
    ck_assert_str_eq(r.err, "lmpipe detokenize: token id 99999999999999999999999 out of range "
                            "(the vocabulary has ids 0..499)\n");
    free_result(&r);
    char *nofile = lmp_strfmt("%s/nofile", tmp);
    r = run_cli(lmp_cli_tokenize, NULL, (const char *[]){ "tokenize", "--vocab", vdir, nofile, NULL });
    ck_assert_int_eq(r.rc, 1);
    ASSERT_MSG(r.err, "lmpipe tokenize: %s: No such file or directory\n", nofile);
    free_result(&r);
    r = run_cli(lmp_cli_tokenize, NULL, (const char *[]){ "tokenize", "--vocab", nofile, NULL });
    ck_assert_int_eq(r.rc, 1);
    ASSERT_MSG(r.err, "lmpipe tokenize: %s: No such file or directory\n", nofile);
    free_result(&r);
    /* usage */
    r = run_cli(lmp_cli_tokenize, NULL, (const char *[]){ "tokenize", "--help", NULL });
    ck_assert_int_eq(r.rc, 0);
    ck_assert(strncmp(r.out, "Usage: lmpipe tokenize [--vocab DIR] [--special] [FILE|-]\n", 58) == 0);
    free_result(&r);
    r = run_cli(lmp_cli_detokenize, NULL, (const char *[]){ "detokenize", "-h", NULL });
    ck_assert_int_eq(r.rc, 0);
    ck_assert(strncmp(r.out, "Usage: lmpipe detokenize [--vocab DIR] [FILE|-]\n", 48) == 0);
    free_result(&r);
    r = run_cli(lmp_cli_tokenize, NULL, (const char *[]){ "tokenize", "--bogus", NULL });
    ck_assert_int_eq(r.rc, 2);
    ck_assert_str_eq(r.err, "lmpipe tokenize: unknown option '--bogus'\nTry 'lmpipe tokenize --help'.\n");
    free_result(&r);
    r = run_cli(lmp_cli_detokenize, NULL, (const char *[]){ "detokenize", "--special", NULL });
    ck_assert_int_eq(r.rc, 2);
    ck_assert_str_eq(r.err, "lmpipe detokenize: unknown option '--special'\nTry 'lmpipe detokenize --help'.\n");
    free_result(&r);
    r = run_cli(lmp_cli_tokenize, NULL, (const char *[]){ "tokenize", "a", "b", NULL });
    ck_assert_int_eq(r.rc, 2);
    ck_assert_str_eq(r.err, "lmpipe tokenize: more than one input file ('a' and 'b')\n"
                            "Try 'lmpipe tokenize --help'.\n");
    free_result(&r);
    r = run_cli(lmp_cli_tokenize, NULL, (const char *[]){ "tokenize", "--vocab", NULL });
    ck_assert_int_eq(r.rc, 2);
    ck_assert_str_eq(r.err, "lmpipe tokenize: --vocab needs a folder\nTry 'lmpipe tokenize --help'.\n");
    free_result(&r);
    /* the default folder: $LMPIPE_DATA_DIR/gpt2 */
    char *data = lmp_strfmt("%s/data", tmp), *g = lmp_strfmt("%s/data/gpt2", tmp);
    ck_assert_int_eq(lmp_mkdirs(g), 0);
    char *files[1] = { fixture("corpus/prose.txt") };
    ck_assert_int_eq(lmp_bpe_train((const char *const *)files, 1, 500, g, 1), 0);
    setenv("LMPIPE_DATA_DIR", data, 1);
    r = run_cli(lmp_cli_tokenize, NULL, (const char *[]){ "tokenize", prose, NULL });
    ck_assert_int_eq(r.rc, 0);
    ck_assert_str_eq(r.out, line);
    free_result(&r);
    free(files[0]);
    free(data);
    free(g);
    free(b1), free(b2), free(b3), free(nofile), free(eotf), free(ids2), free(idfile);
    free(line);
    free(ids);
    free(text);
    free(prose);
    free(vdir);
    lmp_bpe_free(bpe);
    remove_tmp();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bpe");
    TCase *tc = tcase_create("bpe");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, byte_alphabet);
    tcase_add_test(tc, pretokenizer_pieces);
    tcase_add_test(tc, pretokenizer_whitespace_set);
    tcase_add_test(tc, pretokenizer_invalid_utf8);
    tcase_add_test(tc, load_errors_vocab);
    tcase_add_test(tc, load_errors_merges);
    tcase_add_test(tc, load_dir_errors);
    tcase_add_test(tc, unordered_merges_follow_reference);
    tcase_add_test(tc, train_matches_reference);
    tcase_add_test(tc, train_errors);
    tcase_add_test(tc, roundtrip_any_bytes);
    tcase_add_test(tc, stream_equals_whole);
    tcase_add_test(tc, special_token_and_decode_errors);
    tcase_add_test(tc, cli_tokenize_detokenize);
    suite_add_tcase(s, tc);
    int failed = test_run_suite(s, 0);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
