/*
 * check_engine.c — the engine: parameters, the pipeline parser and checker
 * (every error path, with its exact message), plugin loading (good plugin,
 * bad ABI, missing symbol, duplicate stage, bad default), the store (schema,
 * concurrent writers) and the executor (artifact flow, cache, failures).
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pipeline.h"
#include "registry.h"
#include "run.h"
#include "store.h"
#include "util.h"
#include "testutil.h"

static char tmpdir[64];

static void make_tmpdir(void) { test_mkdtemp(tmpdir, "engine"); }
static void remove_tmpdir(void) { test_rmtree(tmpdir); }

static char *plugin_file(const char *rel)
{
    const char *b = getenv("top_builddir");
    return lmp_strfmt("%s/tests/plugins/%s", b ? b : ".", rel);
}

static void load_testplug(void)
{
    lmp_registry_reset();
    char *f = plugin_file(".libs/testplug.so");
    ck_assert_msg(lmp_registry_load_file(f) == 0, "%s", lmp_errmsg());
    free(f);
}

/* ---------------------------------------------------------------- params */

START_TEST(params_parse)
{
    lmp_param p_int = {"epochs", LMP_INT, "5", 1, 100, NULL, "doc"};
    lmp_param p_float = {"lr", LMP_FLOAT, "1e-3", 0, 1, NULL, "doc"};
    lmp_param p_bool = {"shuffle", LMP_BOOL, "true", LMP_UNBOUNDED, NULL, "doc"};
    lmp_param p_enum = {"cell", LMP_ENUM, "gru", LMP_UNBOUNDED, "elman|gru|lstm", "doc"};
    lmp_param_value v;
    ck_assert_int_eq(lmp_param_parse(&p_int, "42", &v), 0);
    ck_assert_int_eq(v.i, 42);
    free(v.text);
    ck_assert_int_eq(lmp_param_parse(&p_int, "0", &v), -1);
    ck_assert_str_eq(lmp_errmsg(), "0 is out of range [1, 100]");
    ck_assert_int_eq(lmp_param_parse(&p_int, "4x", &v), -1);
    ck_assert_str_eq(lmp_errmsg(), "'4x' is not an integer");
    ck_assert_int_eq(lmp_param_parse(&p_int, "", &v), -1);
    ck_assert_int_eq(lmp_param_parse(&p_float, "2e-4", &v), 0);
    ck_assert(v.f == 2e-4);
    free(v.text);
    ck_assert_int_eq(lmp_param_parse(&p_float, "nan", &v), -1);
    ck_assert_str_eq(lmp_errmsg(), "'nan' is not a finite number");
    /* strict: the whole string, and underflow is not overflow or NaN */
    ck_assert_int_eq(lmp_param_parse(&p_float, "1e-5xyz", &v), -1);
    ck_assert_str_eq(lmp_errmsg(), "'1e-5xyz' is not a number");
    ck_assert_int_eq(lmp_param_parse(&p_float, " 0.5", &v), -1);
    ck_assert_str_eq(lmp_errmsg(), "' 0.5' is not a number");
    ck_assert_int_eq(lmp_param_parse(&p_float, "1e-400", &v), -1);
    ck_assert_str_eq(lmp_errmsg(), "'1e-400' underflows (nonzero, but below 2.22507e-308, the smallest normal double)");
    ck_assert_int_eq(lmp_param_parse(&p_float, "-1e400", &v), -1);
    ck_assert_str_eq(lmp_errmsg(), "'-1e400' overflows (beyond 1.79769e+308, the largest double)");
    ck_assert_int_eq(lmp_param_parse(&p_float, "inf", &v), -1);
    ck_assert_str_eq(lmp_errmsg(), "'inf' is not a finite number");
    ck_assert_int_eq(lmp_param_parse(&p_float, "1.5", &v), -1);
    ck_assert_str_eq(lmp_errmsg(), "1.5 is out of range [0, 1]");
    ck_assert_int_eq(lmp_param_parse(&p_bool, "Yes", &v), 0);
    ck_assert_int_eq(v.i, 1);
    ck_assert_str_eq(v.text, "true");
    free(v.text);
    ck_assert_int_eq(lmp_param_parse(&p_bool, "maybe", &v), -1);
    ck_assert_int_eq(lmp_param_parse(&p_enum, "lstm", &v), 0);
    free(v.text);
    ck_assert_int_eq(lmp_param_parse(&p_enum, "gr", &v), -1);
    ck_assert_str_eq(lmp_errmsg(), "'gr' is not one of elman|gru|lstm");
    lmp_param list[] = {p_int, p_float, p_bool, p_enum, LMP_PARAM_END};
    ck_assert_str_eq(lmp_param_suggest(list, "epoch"), "epochs");
    ck_assert_str_eq(lmp_param_suggest(list, "shufle"), "shuffle");
    ck_assert_ptr_null(lmp_param_suggest(list, "temperature"));
}
END_TEST

/* -------------------------------------------------------------- registry */

START_TEST(registry_good_and_bad)
{
    lmp_registry_reset();
    char *good = plugin_file(".libs/testplug.so");
    ck_assert_int_eq(lmp_registry_load_file(good), 0);
    ck_assert_ptr_nonnull(lmp_registry_find("source"));
    ck_assert_ptr_nonnull(lmp_registry_find("sink"));
    ck_assert_str_eq(lmp_registry_suggest("sorce"), "source");

    char *f = plugin_file("bad/.libs/badabi.so");
    ck_assert_int_eq(lmp_registry_load_file(f), -1);
    char *want = lmp_strfmt("%s: plugin ABI version %u, but this lmpipe expects %u (rebuild the plugin)", f,
                            LMP_ABI_VERSION + 98, LMP_ABI_VERSION);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want), free(f);

    f = plugin_file("bad/.libs/nosym.so");
    ck_assert_int_eq(lmp_registry_load_file(f), -1);
    want = lmp_strfmt("%s: not an lmpipe plugin (no 'lmpipe_plugin' symbol)", f);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want), free(f);

    f = plugin_file("bad/.libs/dupstage.so");
    ck_assert_int_eq(lmp_registry_load_file(f), -1);
    want = lmp_strfmt("%s: stage 'source' is already provided by %s", f, good);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want), free(f);

    f = plugin_file("bad/.libs/baddefault.so");
    ck_assert_int_eq(lmp_registry_load_file(f), -1);
    want = lmp_strfmt("%s: stage 'badparam' parameter 'rank' has an invalid default: 0 is out of range [1, 64]", f);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want), free(f);

    f = plugin_file("no-such.so");
    ck_assert_int_eq(lmp_registry_load_file(f), -1);
    ck_assert_ptr_nonnull(strstr(lmp_errmsg(), "cannot load plugin"));
    free(f);
    free(good);

    /* a missing directory on the explicit path is an error naming it */
    lmp_registry_reset();
    ck_assert_int_eq(lmp_registry_load("/nonexistent/plugins"), -1);
    ck_assert_str_eq(lmp_errmsg(), "/nonexistent/plugins: plugin directory not found");
    lmp_registry_reset();
}
END_TEST

/* -------------------------------------------------------------- pipeline */

/* Parse and check `text`; return 0 or -1 with the message in lmp_errmsg(). */
static int parse_check(const char *text, lmp_pipeline **out)
{
    lmp_pipeline *p;
    if (lmp_pipeline_parse_string("t.pipe", text, NULL, &p) != 0) return -1;
    if (lmp_pipeline_check(p) != 0) {
        lmp_pipeline_free(p);
        return -1;
    }
    if (out) *out = p;
    else lmp_pipeline_free(p);
    return 0;
}

static void expect_error(const char *text, const char *msg)
{
    ck_assert_msg(parse_check(text, NULL) == -1, "pipeline should fail: %s", text);
    ck_assert_str_eq(lmp_errmsg(), msg);
}

START_TEST(pipeline_valid)
{
    load_testplug();
    lmp_pipeline *p;
    setenv("LMP_TEST_ENV", "from-env", 1);
    int rc = parse_check("# a comment\n"
                         "set V=2.5 MODE=double\n"
                         "\n"
                         "a source value=${V} mode=${MODE} label=\"two words\" \\\n"
                         "    epochs=${UNSET_VAR:-7}   # trailing comment\n"
                         "b source label=${LMP_TEST_ENV} verbose=yes\n"
                         "c sink @in=a\n"
                         "d sink\n",
                         &p);
    ck_assert_msg(rc == 0, "%s", lmp_errmsg());
    ck_assert_int_eq(p->nstages, 4);
    ck_assert_str_eq(p->stages[0].name, "a");
    ck_assert_int_eq(p->stages[0].line, 4);
    ck_assert_int_eq(p->stages[1].line, 6);
    /* values in declaration order: value, count_file, mode, verbose, label, epochs */
    ck_assert(p->stages[0].values[0].f == 2.5);
    ck_assert_str_eq(p->stages[0].values[2].text, "double");
    ck_assert_str_eq(p->stages[0].values[4].text, "two words");
    ck_assert_int_eq(p->stages[0].values[5].i, 7);
    ck_assert_int_eq(p->stages[0].values[5].is_set, 1);
    ck_assert_int_eq(p->stages[0].values[1].is_set, 0);
    ck_assert_str_eq(p->stages[1].values[4].text, "from-env");
    ck_assert_str_eq(p->stages[1].values[3].text, "true");
    ck_assert_int_eq(p->stages[2].inputs[0].stage, 0); /* explicit wiring */
    ck_assert_int_eq(p->stages[3].inputs[0].stage, 1); /* latest producer */

    ck_assert_int_eq(lmp_pipeline_override(p, "a.epochs=9"), 0);
    ck_assert_int_eq(lmp_pipeline_override(p, "b.mode=negate"), 0);
    ck_assert_int_eq(lmp_pipeline_check(p), 0);
    ck_assert_int_eq(p->stages[0].values[5].i, 9);
    ck_assert_str_eq(p->stages[1].values[2].text, "negate");
    ck_assert_int_eq(lmp_pipeline_override(p, "zz.epochs=9"), -1);
    ck_assert_str_eq(lmp_errmsg(), "-p zz.epochs=9: no stage named 'zz' in t.pipe (stages: a, b, c, d)");
    ck_assert_int_eq(lmp_pipeline_override(p, "a-epochs=9"), -1);
    ck_assert_str_eq(lmp_errmsg(), "-p a-epochs=9: expected STAGE.KEY=VALUE");
    ck_assert_int_eq(lmp_pipeline_override(p, "a.epochs=0"), 0);
    ck_assert_int_eq(lmp_pipeline_check(p), -1);
    ck_assert_str_eq(lmp_errmsg(), "command line: stage 'a' (source): parameter 'epochs': 0 is out of range [1, 100]");
    ck_assert_int_eq(lmp_pipeline_override(p, "a.epoch=3"), 0);
    ck_assert_int_eq(lmp_pipeline_check(p), -1);
    ck_assert_str_eq(lmp_errmsg(), "command line: stage 'a' (source): unknown parameter 'epoch'; did you mean 'epochs'?");
    lmp_pipeline_free(p);

    /* -D definitions win over set lines and the environment */
    lmp_vars defs = {0};
    lmp_vars_set(&defs, "V", "8");
    ck_assert_int_eq(lmp_pipeline_parse_string("t.pipe", "set V=2\na source value=${V}\n", &defs, &p), 0);
    ck_assert_str_eq(p->stages[0].params[0].value, "8");
    lmp_pipeline_free(p);
    lmp_vars_free(&defs);
    lmp_registry_reset();
}
END_TEST

START_TEST(pipeline_errors)
{
    load_testplug();
    expect_error("", "t.pipe: the pipeline has no stages");
    expect_error("# only a comment\n", "t.pipe: the pipeline has no stages");
    expect_error("a sorce\n", "t.pipe:1: unknown stage type 'sorce'; did you mean 'source'?");
    expect_error("a source\nb quux\n", "t.pipe:2: unknown stage type 'quux' (see: lmpipe plugins; plugin path: (empty))");
    expect_error("a source epoch=3\n", "t.pipe:1: stage 'a' (source): unknown parameter 'epoch'; did you mean 'epochs'?");
    expect_error("a source zzzzzz=3\n", "t.pipe:1: stage 'a' (source): unknown parameter 'zzzzzz' (see: lmpipe inspect source)");
    expect_error("\n\na source epochs=0\n", "t.pipe:3: stage 'a' (source): parameter 'epochs': 0 is out of range [1, 100]");
    expect_error("a source epochs=many\n", "t.pipe:1: stage 'a' (source): parameter 'epochs': 'many' is not an integer");
    expect_error("a source mode=triple\n", "t.pipe:1: stage 'a' (source): parameter 'mode': 'triple' is not one of plain|double|negate");
    expect_error("a source verbose=perhaps\n",
                 "t.pipe:1: stage 'a' (source): parameter 'verbose': 'perhaps' is not a boolean (true/false, yes/no, on/off, 1/0)");
    expect_error("a source epochs=1 epochs=2\n", "t.pipe:1: stage 'a': parameter 'epochs' given twice");
    expect_error("a source\na sink\n", "t.pipe:2: stage name 'a' is already used at t.pipe:1");
    expect_error("a\n", "t.pipe:1: stage 'a' has no stage type (expected: NAME STAGE-TYPE key=value ...)");
    expect_error("a source oops\n", "t.pipe:1: stage 'a': expected key=value or @port=stage, got 'oops'");
    expect_error("9a source\n", "t.pipe:1: '9a' is not a valid stage name (letters, digits, '_' and '-')");
    expect_error("a source label=\"open\n", "t.pipe:1: unterminated quote");
    expect_error("a source label=${NOPE_NOT_SET}\n",
                 "t.pipe:1: undefined variable 'NOPE_NOT_SET' (define it with set, -D NOPE_NOT_SET=..., the environment, or write ${NOPE_NOT_SET:-default})");
    expect_error("a source label=${X\n", "t.pipe:1: bad variable reference '${X ': expected '}' or ':-'");
    expect_error("a source label=${X:-abc\n", "t.pipe:1: unterminated ${...}");
    expect_error("a source label=${}\n", "t.pipe:1: bad variable reference: expected a name after '${'");
    expect_error("set X\n", "t.pipe:1: set: expected NAME=VALUE, got 'X'");
    expect_error("set\n", "t.pipe:1: set: expected NAME=VALUE");
    expect_error("include\n", "t.pipe:1: include: expected one file name");
    expect_error("include /nonexistent/x.pipe\n", "t.pipe:1: include /nonexistent/x.pipe: no such file");
    /* a variable that refers to itself is undefined at the point of use */
    expect_error("set A=${A}\na source\n",
                 "t.pipe:1: undefined variable 'A' (define it with set, -D A=..., the environment, or write ${A:-default})");
    /* type checking of the artifact flow */
    expect_error("b sink\n", "t.pipe:1: stage 'b' (sink) needs a 'number' artifact for its input 'in', but no earlier stage produces one");
    expect_error("a source\nb sink @input=a\n", "t.pipe:2: stage 'b' (sink) has no input port 'input'");
    expect_error("a source\nb sink @in=zz\n", "t.pipe:2: stage 'b': @in=zz: no earlier stage named 'zz'");
    expect_error("b sink @in=a\na source\n", "t.pipe:1: stage 'b': @in=a: no earlier stage named 'a'");
    expect_error("a source\nb sink @in=a.nope\n", "t.pipe:2: stage 'b': @in=a.nope: stage 'a' has no output port 'nope'");
    expect_error("f fail\nb sink @in=f\n", "t.pipe:2: stage 'b': input 'in' takes a 'number' artifact, but stage 'f' (fail) produces none");
    expect_error("a source\nb sink @in=a @in=a\n", "t.pipe:2: stage 'b': port 'in' given twice");
    /* an optional input may stay unwired */
    lmp_pipeline *p;
    ck_assert_int_eq(parse_check("m maybe-sink\n", &p), 0);
    ck_assert_int_eq(p->stages[0].inputs[0].stage, -1);
    lmp_pipeline_free(p);
    lmp_registry_reset();
}
END_TEST

START_TEST(pipeline_files)
{
    load_testplug();
    make_tmpdir();
    char *main_f = lmp_strfmt("%s/main.pipe", tmpdir), *inc = lmp_strfmt("%s/common.pipe", tmpdir);
    char *self = lmp_strfmt("%s/self.pipe", tmpdir), *bin = lmp_strfmt("%s/bin.pipe", tmpdir);
    char *empty = lmp_strfmt("%s/empty.pipe", tmpdir);
    ck_assert_int_eq(lmp_write_file_atomic(inc, "set EP=4\nsrc source epochs=${EP}\n", 33), 0);
    const char *m = "include common.pipe\nout sink\n";
    ck_assert_int_eq(lmp_write_file_atomic(main_f, m, strlen(m)), 0);
    lmp_pipeline *p;
    ck_assert_msg(lmp_pipeline_parse_file(main_f, NULL, &p) == 0, "%s", lmp_errmsg());
    ck_assert_int_eq(lmp_pipeline_check(p), 0);
    ck_assert_int_eq(p->nstages, 2);
    ck_assert_str_eq(p->stages[0].file, inc);
    ck_assert_int_eq(p->stages[0].values[5].i, 4);
    ck_assert_ptr_nonnull(strstr(p->text, "src source epochs=${EP}")); /* included text is recorded */
    lmp_pipeline_free(p);

    /* a pipeline that includes itself through a variable */
    const char *s = "set ME=self.pipe\ninclude ${ME}\na source\n";
    ck_assert_int_eq(lmp_write_file_atomic(self, s, strlen(s)), 0);
    ck_assert_int_eq(lmp_pipeline_parse_file(self, NULL, &p), -1);
    char *want = lmp_strfmt("%s:2: include self.pipe: the file includes itself (include cycle)", self);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);

    ck_assert_int_eq(lmp_write_file_atomic(bin, "a source label=\xff\xfe\n", 18), 0);
    ck_assert_int_eq(lmp_pipeline_parse_file(bin, NULL, &p), -1);
    want = lmp_strfmt("%s:1: invalid UTF-8 (byte 16)", bin);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);

    ck_assert_int_eq(lmp_write_file_atomic(empty, "", 0), 0);
    ck_assert_int_eq(lmp_pipeline_parse_file(empty, NULL, &p), -1);
    want = lmp_strfmt("%s: empty pipeline file", empty);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);

    ck_assert_int_eq(lmp_pipeline_parse_file(tmpdir, NULL, &p), -1);
    want = lmp_strfmt("%s: is a directory, expected a file", tmpdir);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);

    free(main_f), free(inc), free(self), free(bin), free(empty);
    remove_tmpdir();
    lmp_registry_reset();
}
END_TEST

/* ----------------------------------------------------------------- store */

static int64_t scalar(lmp_store *s, const char *sql)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(lmp_store_db(s), sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* A database written by a version-1 lmpipe is migrated in place, its runs kept. */
extern const char lmp_schema_sql_1[];
START_TEST(store_migrates_v1)
{
    make_tmpdir();
    char *db = lmp_strfmt("%s/v1.db", tmpdir);
    sqlite3 *raw;
    ck_assert_int_eq(sqlite3_open(db, &raw), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(raw, lmp_schema_sql_1, NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(raw,
                                  "PRAGMA user_version = 1;"
                                  "INSERT INTO experiments(name) VALUES ('old');"
                                  "INSERT INTO runs(experiment_id, pipeline, pipeline_text, status, seed, host, pid,"
                                  " lmpipe_version) VALUES (1, 'a.pipe', '', 'finished', 1, 'h', 1, '0.0.9')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);
    lmp_store *s;
    ck_assert_int_eq(lmp_store_open(db, &s), 0);
    ck_assert_int_eq(scalar(s, "PRAGMA user_version"), 2);
    ck_assert_int_eq(scalar(s, "SELECT count(*) FROM runs WHERE sweep_id IS NULL AND pipeline = 'a.pipe'"), 1);
    ck_assert_int_eq(scalar(s, "SELECT count(*) FROM sweeps"), 0);
    lmp_store_close(s);
    free(db);
}
END_TEST

START_TEST(store_schema)
{
    make_tmpdir();
    char *db = lmp_strfmt("%s/x.db", tmpdir);
    lmp_store *s;
    ck_assert_int_eq(lmp_store_open(db, &s), 0);
    ck_assert_int_eq(scalar(s, "PRAGMA user_version"), LMP_STORE_SCHEMA_VERSION);
    int64_t run;
    ck_assert_int_eq(lmp_store_begin_run(s, "exp", "p.pipe", "text", 7, &run), 0);
    ck_assert_int_eq(lmp_store_stage_add(s, run, "a", "plug:a", "1.0", 0), 0);
    ck_assert_int_eq(lmp_store_metric(s, run, "a", "loss", 0, 2.0), 0);
    ck_assert_int_eq(lmp_store_metric(s, run, "a", "loss", 1, 1.0), 0);
    ck_assert_int_eq(lmp_store_metric(s, run, "a", "loss", 2, 0.0 / 0.0), 0); /* NaN is stored as NULL */
    ck_assert_int_eq(lmp_store_end_run(s, run, "finished", NULL), 0);
    ck_assert_int_eq(scalar(s, "SELECT count(*) FROM metrics WHERE value IS NULL"), 1);
    ck_assert_int_eq(scalar(s, "SELECT count(*) FROM latest_metrics"), 1);
    ck_assert_int_eq(scalar(s, "SELECT count(*) FROM run_summary WHERE status = 'finished' AND duration_s >= 0"), 1);
    /* an ended run keeps its status (another MPI rank's failure stays) */
    ck_assert_int_eq(lmp_store_end_run(s, run, "interrupted", "late"), 0);
    ck_assert_int_eq(scalar(s, "SELECT count(*) FROM runs WHERE status = 'finished' AND error IS NULL"), 1);
    ck_assert_int_eq(lmp_store_mark_failed(s, run, "a", "rank 1 of 2: boom"), 0);
    ck_assert_int_eq(scalar(s, "SELECT count(*) FROM runs r JOIN stages g ON g.run_id = r.id WHERE r.status = 'failed'"
                               " AND r.error = 'rank 1 of 2: boom' AND g.status = 'failed'"),
                     1);
    int64_t run2;
    ck_assert_int_eq(lmp_store_begin_run(s, "exp", "p.pipe", "text", 7, &run2), 0);
    ck_assert_int_eq(lmp_store_end_run(s, run2, "bogus", NULL), -1); /* CHECK constraint */
    ck_assert_int_eq(lmp_store_set_world_size(s, run2, 4), 0);
    ck_assert_int_eq(scalar(s, "SELECT world_size FROM runs WHERE sweep_id IS NULL AND id = 2"), 4);
    lmp_store_close(s);
    /* reopening does not migrate again; read-only refuses writes */
    ck_assert_int_eq(lmp_store_open(db, &s), 0);
    ck_assert_int_eq(scalar(s, "SELECT count(*) FROM runs"), 2);
    lmp_store_close(s);
    ck_assert_int_eq(lmp_store_open_readonly(db, &s), 0);
    ck_assert_int_eq(lmp_store_print_query(s, "DELETE FROM runs", 0, stdout), -1);
    ck_assert_str_eq(lmp_errmsg(), "not allowed: the store is read-only here (DELETE FROM runs)");
    lmp_store_close(s);
    /* a file that is not a database */
    char *junk = lmp_strfmt("%s/junk.db", tmpdir);
    ck_assert_int_eq(lmp_write_file_atomic(junk, "this is not sqlite, just some text that is long enough", 54), 0);
    ck_assert_int_eq(lmp_store_open(junk, &s), -1);
    char *want = lmp_strfmt("%s: file is not a database", junk);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want), free(junk), free(db);
    remove_tmpdir();
}
END_TEST

START_TEST(store_concurrent_writers)
{
    make_tmpdir();
    char *db = lmp_strfmt("%s/c.db", tmpdir);
    lmp_store *s;
    ck_assert_int_eq(lmp_store_open(db, &s), 0);
    lmp_store_close(s);
    enum { NPROC = 4, NMETRIC = 300 };
    for (int k = 0; k < NPROC; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            lmp_store *c;
            int64_t run;
            if (lmp_store_open(db, &c) != 0 || lmp_store_begin_run(c, "conc", "p", "t", (uint64_t)k, &run) != 0)
                _exit(1);
            for (int i = 0; i < NMETRIC; i++)
                if (lmp_store_metric(c, run, "s", "m", i, i) != 0) _exit(2);
            lmp_store_end_run(c, run, "finished", NULL);
            lmp_store_close(c);
            _exit(0);
        }
    }
    for (int k = 0; k < NPROC; k++) {
        int status;
        wait(&status);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    ck_assert_int_eq(lmp_store_open(db, &s), 0);
    ck_assert_int_eq(scalar(s, "SELECT count(*) FROM metrics"), NPROC * NMETRIC);
    ck_assert_int_eq(scalar(s, "SELECT count(*) FROM runs WHERE status = 'finished'"), NPROC);
    lmp_store_close(s);
    free(db);
    remove_tmpdir();
}
END_TEST

/* -------------------------------------------------------------- executor */

static int run_text(lmp_store *s, const char *text, int no_cache, int64_t *run)
{
    lmp_pipeline *p;
    ck_assert_msg(lmp_pipeline_parse_string("t.pipe", text, NULL, &p) == 0, "%s", lmp_errmsg());
    ck_assert_msg(lmp_pipeline_check(p) == 0, "%s", lmp_errmsg());
    lmp_run_opts o = {.experiment = "t", .seed = 3, .no_cache = no_cache};
    int rc = lmp_run_pipeline(p, s, &o, run);
    lmp_pipeline_free(p);
    return rc;
}

static double metric(lmp_store *s, int64_t run, const char *stage, const char *key)
{
    char *sql = lmp_strfmt("SELECT value FROM latest_metrics WHERE run_id = %lld AND stage = '%s' AND key = '%s'",
                           (long long)run, stage, key);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(lmp_store_db(s), sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    double v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    free(sql);
    return v;
}

START_TEST(run_flow_cache_failure)
{
    load_testplug();
    make_tmpdir();
    char *db = lmp_strfmt("%s/r.db", tmpdir), *count = lmp_strfmt("%s/count.txt", tmpdir);
    lmp_store *s;
    ck_assert_int_eq(lmp_store_open(db, &s), 0);
    int64_t run;
    char *text = lmp_strfmt("a source value=2 mode=double count_file=%s\nb sink\n", count);
    ck_assert_int_eq(run_text(s, text, 0, &run), 0);
    ck_assert(metric(s, run, "b", "seen") == 4.0);
    ck_assert(metric(s, run, "a", "loss") == 1.0 / 3);
    ck_assert_int_eq(scalar(s, "SELECT count(*) FROM params WHERE stage = 'a'"), 6); /* defaults included */
    ck_assert_int_eq(scalar(s, "SELECT count(*) FROM stages WHERE status = 'finished'"), 2);
    /* second run: the cacheable stage is reused, not rerun */
    ck_assert_int_eq(run_text(s, text, 0, &run), 0);
    ck_assert(metric(s, run, "b", "seen") == 4.0);
    char *q = lmp_strfmt("SELECT count(*) FROM stages WHERE run_id = %lld AND stage = 'a' AND status = 'cached'",
                         (long long)run);
    ck_assert_int_eq(scalar(s, q), 1);
    free(q);
    char *data;
    size_t n;
    ck_assert_int_eq(lmp_read_file(count, 0, &data, &n), 0);
    ck_assert_str_eq(data, "ran\n");
    free(data);
    /* --no-cache recomputes; a different parameter is a different key */
    ck_assert_int_eq(run_text(s, text, 1, &run), 0);
    free(text);
    text = lmp_strfmt("a source value=3 count_file=%s\nb sink\n", count);
    ck_assert_int_eq(run_text(s, text, 0, &run), 0);
    ck_assert(metric(s, run, "b", "seen") == 3.0);
    ck_assert_int_eq(lmp_read_file(count, 0, &data, &n), 0);
    ck_assert_str_eq(data, "ran\nran\nran\n");
    free(data);
    free(text);

    /* a failing stage fails the run, names itself, keeps what was logged */
    ck_assert_int_eq(run_text(s, "a source\nf fail message=kaput\nb sink\n", 0, &run), 1);
    ck_assert_str_eq(lmp_errmsg(), "stage 'f' (fail): kaput");
    q = lmp_strfmt("SELECT count(*) FROM runs WHERE id = %lld AND status = 'failed' AND error = 'stage ''f'' (fail): kaput'",
                   (long long)run);
    ck_assert_int_eq(scalar(s, q), 1);
    free(q);
    ck_assert(metric(s, run, "f", "before_failure") == 42);
    q = lmp_strfmt("SELECT group_concat(stage || '=' || status, ',') FROM (SELECT * FROM stages WHERE run_id = %lld ORDER BY position)",
                   (long long)run);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(lmp_store_db(s), q, -1, &st, NULL);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "a=finished,f=failed,b=pending");
    sqlite3_finalize(st);
    free(q);

    /* a stage that takes its input over hands it on; the old slot is gone */
    ck_assert_int_eq(run_text(s, "a source value=5\nb bump\nc sink\n", 0, &run), 0);
    ck_assert(metric(s, run, "c", "seen") == 6.0);
    ck_assert_int_eq(run_text(s, "a source value=5\nb bump\nc sink @in=a\n", 0, &run), 1);
    ck_assert_str_eq(lmp_errmsg(), "stage 'c' needs input 'in' from stage 'a', but stage 'b' took it over; wire 'in' to 'b' instead");
    /* an optional input wired by type to a value taken over is absent, not an error
     * (study.pipe: the rnn stage's optional lm after gpt2-classifier took the base) */
    ck_assert_int_eq(run_text(s, "a source value=5\nb sink take=true\nc maybe-sink\n", 0, &run), 0);
    ck_assert(metric(s, run, "b", "seen") == 5.0);
    ck_assert(metric(s, run, "c", "seen") == -999);
    ck_assert_int_eq(run_text(s, "a source value=5\nb sink take=true\nc maybe-sink @in=a\n", 0, &run), 1);
    ck_assert_str_eq(lmp_errmsg(), "stage 'c' needs input 'in' from stage 'a', but stage 'b' took it over; wire 'in' to 'b' instead");

    /* a sub-run: another pipeline recorded as a run of its own, its output taken */
    char *sub = lmp_strfmt("%s/sub.pipe", tmpdir);
    ck_assert_int_eq(lmp_write_file_atomic(sub, "a source value=7\n", 17), 0);
    text = lmp_strfmt("f fetch pipeline=%s\nb sink\n", sub);
    ck_assert_int_eq(run_text(s, text, 0, &run), 0);
    ck_assert(metric(s, run, "b", "seen") == 7.0);
    q = lmp_strfmt("SELECT count(*) FROM runs r JOIN experiments e ON e.id = r.experiment_id"
                   " WHERE e.name = 'subruns' AND r.status = 'finished' AND r.id = %lld + 1", (long long)run);
    ck_assert_int_eq(scalar(s, q), 1);
    free(q), free(text);
    text = lmp_strfmt("f fetch pipeline=%s/missing.pipe\nb sink\n", tmpdir);
    ck_assert_int_eq(run_text(s, text, 0, &run), 1);
    ck_assert_ptr_nonnull(strstr(lmp_errmsg(), "missing.pipe: No such file or directory"));
    free(text), free(sub);

    /* a stage that does not produce what it declared */
    ck_assert_int_eq(run_text(s, "x forgetful\nb sink\n", 0, &run), 1);
    ck_assert_str_eq(lmp_errmsg(), "stage 'x' (forgetful) finished without producing its output 'out'");

    lmp_store_close(s);
    free(db), free(count);
    remove_tmpdir();
    lmp_registry_reset();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("engine");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, params_parse);
    tcase_add_test(tc, registry_good_and_bad);
    tcase_add_test(tc, pipeline_valid);
    tcase_add_test(tc, pipeline_errors);
    tcase_add_test(tc, pipeline_files);
    tcase_add_test(tc, store_schema);
    tcase_add_test(tc, store_migrates_v1);
    tcase_add_test(tc, store_concurrent_writers);
    tcase_add_test(tc, run_flow_cache_failure);
    suite_add_tcase(s, tc);
    int failed = test_run_suite(s, 0);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
