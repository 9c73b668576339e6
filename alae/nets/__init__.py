"""Network families for F, G, E, D."""
