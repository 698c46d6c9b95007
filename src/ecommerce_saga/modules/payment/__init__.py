"""Payment: card and PayPal charges through a pluggable gateway, refunds, and payment history."""
