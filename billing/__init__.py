"""Plans, the usage ledger, rollups, rating, invoices and quotas (grows in the metering issue)."""
