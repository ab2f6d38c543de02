-- The engine core of 0.3.0: the plotter (src/plot.rs, src/model_cache.rs) and end_job's
-- a_write parameter.

-- end_job(job, state, out) gains a_write (default false)
DROP FUNCTION jobcenter.end_job(jobcenter.jobs, jobcenter.job_state, jsonb);

CREATE FUNCTION jobcenter."model_changed"("action_id" INT) RETURNS bool
STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'model_changed_wrapper';

CREATE FUNCTION jobcenter."plot"("workflow_id" INT, "task_id" INT, "state" TEXT,
    "task_state" jsonb, "arguments" jsonb, "environment" jsonb, "variables" jsonb,
    "stepcounter" INT, "max_steps" INT, "entered" double precision,
    "outputs" jsonb DEFAULT NULL) RETURNS jsonb
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'plot_wrapper';

CREATE FUNCTION jobcenter."plottable"("workflow_id" INT, "task_id" INT, "state" TEXT,
    "stepcounter" INT, "max_steps" INT) RETURNS bool
STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'plottable_wrapper';

CREATE FUNCTION jobcenter."fill_args"("action_id" INT, "args" jsonb, "environment" bool)
RETURNS jsonb STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'fill_args_wrapper';

CREATE FUNCTION jobcenter."fit_outputs"("action_id" INT, "out" jsonb) RETURNS jsonb
STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'fit_outputs_wrapper';
