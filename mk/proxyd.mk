# Filled in by its work stream.
