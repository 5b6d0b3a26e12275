"""`manage.py import_reimbursements FILE.csv`: the reimbursements feed. Format: docs/formats.md.

Exit codes: 0 everything imported; 1 at least one row rejected (the others
are imported, or none with --strict); 2 the file cannot be used (unreadable,
missing or wrong header) and nothing was imported.
"""

from portal.payments import imports

from .import_allowances import PaymentFeedCommand


class Command(PaymentFeedCommand):
    help = (
        "Import the reimbursements feed (CSV, see docs/formats.md): upsert lines by line_id, "
        "then email the members with new payments."
    )
    read = staticmethod(imports.reimbursement_feed_read)
    run = staticmethod(imports.reimbursements_import)
    writers = True
