"""An index of the running tasks, for the orphan sweep of the task workers (portal/core/workers.py).

Every live worker looks for tasks left `RUNNING` at each heartbeat. The task
table keeps finished tasks for weeks (`task_results_prune`): without this
partial index each look would read all of them. django-tasks-db indexes only
the `READY` ones; this is ours, on its table.
"""

from django.db import migrations

INDEX = "core_tasks_running_started"
TABLE = "django_tasks_database_dbtaskresult"


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_task_worker"),
        ("django_tasks_database", "0021_conditional_partial_index_ordering"),
    ]

    operations = [
        migrations.RunSQL(
            f"CREATE INDEX {INDEX} ON {TABLE} (started_at) WHERE status = 'RUNNING'",
            f"DROP INDEX {INDEX}",
        ),
    ]
