-- ops: from 0.1.0: an index to find archived jobs by parent (jcadm tree); the admin
-- procedures (retry_now, set_disabled) are new functions in admin.sql.
create index if not exists jobs_archive_parent on jobcenter.jobs_archive (parentjob_id)
    where parentjob_id is not null;
