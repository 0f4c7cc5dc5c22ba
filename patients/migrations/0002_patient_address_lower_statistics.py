"""Statistics on lower(state) and lower(city) of patients, for PostgreSQL's planner.

The campaign address filter compares these expressions (case-insensitively). Without
statistics PostgreSQL guesses they keep a fraction of a percent of a practice's patients,
and may then plan the rest of an audience query (a visit trigger's per-case subqueries)
around that wrong guess. Extended statistics are PostgreSQL's; other databases skip this.
"""

from django.db import migrations

STATEMENTS = [
    (
        "CREATE STATISTICS IF NOT EXISTS patient_state_lower ON (lower(state)) "
        "FROM patients_patient",
        "DROP STATISTICS IF EXISTS patient_state_lower",
    ),
    (
        "CREATE STATISTICS IF NOT EXISTS patient_city_lower ON (lower(city)) FROM patients_patient",
        "DROP STATISTICS IF EXISTS patient_city_lower",
    ),
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for create, _drop in STATEMENTS:
            schema_editor.execute(create)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for _create, drop in STATEMENTS:
            schema_editor.execute(drop)


class Migration(migrations.Migration):
    dependencies = [("patients", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
