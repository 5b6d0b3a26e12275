"""Schema operations shared by the payments migrations."""

from django.db.migrations.operations.base import Operation


class InPlaceOnPostgres(Operation):
    """`operations` for the state and other databases; `forwards` and `backwards`
    (SQL statements) on PostgreSQL."""

    reversible = True

    def __init__(self, *, operations, forwards, backwards, description):
        self.operations = operations
        self.forwards = forwards
        self.backwards = backwards
        self.description = description

    def deconstruct(self):
        return (
            self.__class__.__qualname__,
            [],
            {
                "operations": self.operations,
                "forwards": self.forwards,
                "backwards": self.backwards,
                "description": self.description,
            },
        )

    def state_forwards(self, app_label, state):
        for operation in self.operations:
            operation.state_forwards(app_label, state)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            for sql in self.forwards:
                schema_editor.execute(sql)
            return
        state = from_state
        for operation in self.operations:
            after = state.clone()
            operation.state_forwards(app_label, after)
            operation.database_forwards(app_label, schema_editor, state, after)
            state = after

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            for sql in self.backwards:
                schema_editor.execute(sql)
            return
        states = [to_state]
        for operation in self.operations[:-1]:
            after = states[-1].clone()
            operation.state_forwards(app_label, after)
            states.append(after)
        for operation, before in zip(reversed(self.operations), reversed(states), strict=True):
            operation.database_backwards(app_label, schema_editor, from_state, before)
            from_state = before

    def describe(self):
        return self.description
