-- db/schema.sql — the lmpipe experiment store, schema version 1.
-- Every `lmpipe run` writes here; query it with `lmpipe sql` or the sqlite3 shell.
-- The version is PRAGMA user_version; later versions append migrations to
-- core/engine/store.c and never edit a released one.

CREATE TABLE experiments (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE runs (
    id              INTEGER PRIMARY KEY,
    experiment_id   INTEGER NOT NULL REFERENCES experiments(id),
    pipeline        TEXT NOT NULL,          -- path of the pipeline file as given
    pipeline_text   TEXT NOT NULL,          -- its text, after includes, before overrides
    status          TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'interrupted')),
    started_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at     TEXT,
    seed            INTEGER NOT NULL,
    host            TEXT NOT NULL,
    pid             INTEGER NOT NULL,       -- lets a later lmpipe see that a 'running' run died
    lmpipe_version  TEXT NOT NULL,
    world_size      INTEGER NOT NULL DEFAULT 1,
    error           TEXT                    -- the one-line message of a failed run
);

CREATE TABLE stages (
    run_id          INTEGER NOT NULL REFERENCES runs(id),
    stage           TEXT NOT NULL,          -- the stage's name in the pipeline
    plugin          TEXT NOT NULL,          -- plugin:stage-type, e.g. gpt2:generate
    plugin_version  TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'running', 'finished', 'failed', 'interrupted', 'cached')),
    started_at      TEXT,
    finished_at     TEXT,
    seconds         REAL,
    cache_key       TEXT,                   -- set for cacheable stages
    position        INTEGER NOT NULL,       -- order in the pipeline
    PRIMARY KEY (run_id, stage)
);

CREATE TABLE params (
    run_id  INTEGER NOT NULL REFERENCES runs(id),
    stage   TEXT NOT NULL,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (run_id, stage, key)
);

CREATE TABLE metrics (
    run_id     INTEGER NOT NULL REFERENCES runs(id),
    stage      TEXT NOT NULL,
    key        TEXT NOT NULL,
    step       INTEGER NOT NULL,            -- epoch, step, or -1 for a final value
    value      REAL,                        -- NULL records a NaN/Inf
    logged_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX metrics_by_run ON metrics(run_id, stage, key, step);

CREATE TABLE artifacts (
    run_id  INTEGER NOT NULL REFERENCES runs(id),
    stage   TEXT NOT NULL,
    name    TEXT NOT NULL,
    path    TEXT NOT NULL,
    sha256  TEXT NOT NULL,
    bytes   INTEGER NOT NULL,
    PRIMARY KEY (run_id, stage, name)
);

-- The last logged value of every (run, stage, metric).
CREATE VIEW latest_metrics AS
SELECT m.run_id, m.stage, m.key, m.step, m.value, m.logged_at
FROM metrics m
WHERE m.rowid = (SELECT m2.rowid FROM metrics m2
                 WHERE m2.run_id = m.run_id AND m2.stage = m.stage AND m2.key = m.key
                 ORDER BY m2.step DESC, m2.rowid DESC LIMIT 1);

-- One row per run: where it came from, how long it took, and the last value of
-- each metric as a JSON object {"stage.key": value, ...}
-- (read one with json_extract(metrics, '$."eval.mcc"')).
CREATE VIEW run_summary AS
SELECT r.id AS run_id, e.name AS experiment, r.pipeline, r.status, r.seed,
       r.started_at, r.finished_at,
       round((julianday(coalesce(r.finished_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))
              - julianday(r.started_at)) * 86400.0, 3) AS duration_s,
       (SELECT json_group_object(lm.stage || '.' || lm.key, lm.value)
        FROM latest_metrics lm WHERE lm.run_id = r.id) AS metrics
FROM runs r JOIN experiments e ON e.id = r.experiment_id;
