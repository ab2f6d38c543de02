-- 0.6.0, engine: tasks_done finishes the results the plotter can finish on their jobs' rows
-- alone together (finish_tasks, end_plotted, log_plots); what follows a job's end is ended(),
-- so end_job loses the parameters only the plotter's end used.
drop function jobcenter.end_job(jobcenter.jobs, jobcenter.job_state, jsonb, boolean, boolean);
