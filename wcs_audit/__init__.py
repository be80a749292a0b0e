"""wcs-audit: an append-only audit log and analytics for Flashphoner WCS REST hooks."""
