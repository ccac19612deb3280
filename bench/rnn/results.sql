-- results.sql — the student's dev accuracy and MCC per experiment and
-- pipeline over its seeds: mean ± sample standard deviation of the final
-- evaluate stage (`ev`) of every finished run.  SQLite has no stdev, so the
-- variance comes from the average of squares:
--   sd = sqrt((avg(x^2) - avg(x)^2) * n / (n - 1))   (NULL for one run)
-- Run: lmpipe sql "$(cat bench/rnn/results.sql)"
SELECT e.name AS experiment, r.pipeline, count(*) AS runs,
       group_concat(r.seed, ',') AS seeds,
       printf('%.4f ± %.4f', avg(m.acc),
              sqrt(max(avg(m.acc * m.acc) - avg(m.acc) * avg(m.acc), 0) * count(*) / (count(*) - 1))) AS dev_acc,
       printf('%.4f ± %.4f', avg(m.mcc),
              sqrt(max(avg(m.mcc * m.mcc) - avg(m.mcc) * avg(m.mcc), 0) * count(*) / (count(*) - 1))) AS dev_mcc
FROM (SELECT run_id, max(CASE WHEN key = 'dev_acc' THEN value END) AS acc,
             max(CASE WHEN key = 'dev_mcc' THEN value END) AS mcc
      FROM latest_metrics WHERE stage = 'ev' GROUP BY run_id) AS m
JOIN runs r ON r.id = m.run_id
JOIN experiments e ON e.id = r.experiment_id
WHERE r.status = 'finished'
GROUP BY e.name, r.pipeline
ORDER BY e.name, r.pipeline;
