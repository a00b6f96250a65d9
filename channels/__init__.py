"""Message rendering and the channel providers, behind one protocol."""
