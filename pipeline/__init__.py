"""b2b-enrich: enrich contact files with LeadMagic B2B profiles."""
