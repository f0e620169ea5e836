"""Byte units billing prices and reports in (pure, no Django): plans, invoices, quota mail, usage."""

MIB = 1024**2
GIB = 1024**3  # plans, allowances and overage are in binary GiB, as the templates say
