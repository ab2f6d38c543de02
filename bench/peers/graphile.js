#!/usr/bin/env node
// The peer of `bench peers`: graphile-worker on the bench's own cluster, measured the way
// graphile-worker's perfTest measures it.
//
// usage (DATABASE_URL names the database; NODE_PATH finds graphile-worker and pg):
//   node graphile.js migrate
//       installs graphile-worker's schema.
//   node graphile.js drain JOBS CONCURRENCY unbatched|batched
//       queues JOBS jobs of task `bench` in one add_jobs statement (as perfTest/init.js
//       does), then drains them with one runOnce of CONCURRENCY concurrent jobs (as
//       perfTest's `cli.js --once`). `batched` is perfTest's configuration: a local queue of
//       500 jobs and batched completions (completeJobBatchDelay 0); `unbatched` takes and
//       completes one job per query. The drain time is the runOnce's time minus that of a
//       runOnce on an empty queue just before (startup and shutdown, as perfTest subtracts).
//
// Prints one line of JSON: {"jobs", "elapsed_s", "jobs_per_s", "queue_s", "startup_s",
// "wal_bytes_per_job", "graphile_worker", "node"}. Fails (exit 1) unless every job ran exactly once and none is
// left in the queue.

"use strict";

const { Pool } = require("pg");
const { runMigrations, runOnce } = require("graphile-worker");
const { version } = require("graphile-worker/package.json");

const connectionString = process.env.DATABASE_URL;

// How long the last completions may take to be committed after runOnce resolves.
const SETTLE_S = 10;

async function queued(pool) {
  const { rows } = await pool.query("select count(*)::int as n from graphile_worker.jobs");
  return rows[0].n;
}

function seconds(since) {
  return Number(process.hrtime.bigint() - since) / 1e9;
}

function options(concurrency, batched, taskList) {
  return {
    connectionString,
    concurrency,
    noHandleSignals: true,
    taskList,
    preset: {
      worker: {
        maxPoolSize: concurrency + 1,
        ...(batched
          ? {
              localQueue: { size: 500, refetchDelay: { durationMs: 10 } },
              completeJobBatchDelay: 0,
              failJobBatchDelay: 0,
            }
          : {}),
      },
    },
    logger: quietLogger(),
  };
}

// graphile-worker logs every job at info level; only warnings and errors matter here.
function quietLogger() {
  const { Logger } = require("graphile-worker");
  return new Logger(() => (level, message) => {
    if (level === "error" || level === "warning") {
      console.error(`graphile-worker ${level}: ${message}`);
    }
  });
}

// The cluster's WAL position, and the bytes written since one (the drain's WAL per job
// is a figure of its own: on this machine a durable drain's commits wait on writing it).
async function walLsn(pool) {
  return (await pool.query("select pg_current_wal_lsn()::text as lsn")).rows[0].lsn;
}

async function walSince(pool, lsn) {
  const r = await pool.query("select pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8 as d", [lsn]);
  return r.rows[0].d;
}

async function drain(jobs, concurrency, batched) {
  const seen = new Uint8Array(jobs);
  let ran = 0;
  const taskList = {
    bench: async ({ id }) => {
      if (seen[id]) {
        throw new Error(`job ${id} ran twice`);
      }
      seen[id] = 1;
      ran += 1;
    },
  };
  const pool = new Pool({ connectionString });
  try {
    let start = process.hrtime.bigint();
    await runOnce(options(concurrency, batched, taskList));
    const startup = seconds(start);

    start = process.hrtime.bigint();
    await pool.query(
      `select 1 from graphile_worker.add_jobs(array(
         select json_populate_record(null::graphile_worker.job_spec,
                json_build_object('identifier', 'bench', 'payload', json_build_object('id', i)))
         from generate_series(0, $1::int - 1) i))`,
      [jobs],
    );
    const queue = seconds(start);

    const walBefore = await walLsn(pool);
    start = process.hrtime.bigint();
    await runOnce(options(concurrency, batched, taskList));
    // runOnce may resolve before its last completions are committed: the drain ends when
    // the queue is empty.
    let left = await queued(pool);
    const settle = process.hrtime.bigint();
    while (left > 0 && seconds(settle) < SETTLE_S) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      left = await queued(pool);
    }
    const total = seconds(start);
    const wal = await walSince(pool, walBefore);
    if (ran !== jobs || left !== 0) {
      throw new Error(`${ran} of ${jobs} jobs ran, ${left} left in the queue`);
    }
    const elapsed = Math.max(total - startup, 1e-6);
    return {
      jobs,
      elapsed_s: elapsed,
      jobs_per_s: jobs / elapsed,
      queue_s: queue,
      startup_s: startup,
      wal_bytes_per_job: wal / jobs,
      graphile_worker: version,
      node: process.version,
    };
  } finally {
    await pool.end();
  }
}

function positive(text, what) {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) {
    throw new Error(`${what} must be a positive whole number, not ${JSON.stringify(text)}`);
  }
  return n;
}

async function main(argv) {
  if (!connectionString) {
    throw new Error("DATABASE_URL is not set");
  }
  const [command, ...rest] = argv;
  if (command === "migrate" && rest.length === 0) {
    await runMigrations({ connectionString, logger: quietLogger() });
    console.log(JSON.stringify({ graphile_worker: version, node: process.version }));
  } else if (command === "drain" && rest.length === 3) {
    const [jobs, concurrency, mode] = rest;
    if (mode !== "batched" && mode !== "unbatched") {
      throw new Error(`the drain mode is batched or unbatched, not ${JSON.stringify(mode)}`);
    }
    const result = await drain(
      positive(jobs, "JOBS"),
      positive(concurrency, "CONCURRENCY"),
      mode === "batched",
    );
    console.log(JSON.stringify(result));
  } else {
    throw new Error("usage: graphile.js migrate | drain JOBS CONCURRENCY unbatched|batched");
  }
}

main(process.argv.slice(2)).catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
