-- db/002-sweeps.sql — schema version 2: parameter sweeps (`lmpipe sweep`).
-- Applied after schema.sql (version 1) by core/engine/store.c, to new and old
-- databases alike.

-- One row per `lmpipe sweep`: the pipeline and the grid it expanded.
CREATE TABLE sweeps (
    id            INTEGER PRIMARY KEY,
    pipeline      TEXT NOT NULL,           -- path of the pipeline file as given
    grid          TEXT NOT NULL,           -- the swept options, e.g. "-p f.lr=1e-3,1e-2 --seeds 1,2"
    combinations  INTEGER NOT NULL,        -- runs it expands to
    world_size    INTEGER NOT NULL,        -- MPI ranks that shared the runs (1: one after another)
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- The sweep a run belongs to (NULL: a run of its own); its combination's
-- values are its params rows, like any run's.
ALTER TABLE runs ADD COLUMN sweep_id INTEGER REFERENCES sweeps(id);
CREATE INDEX runs_by_sweep ON runs(sweep_id);
